import { boot, wasm, $, message, gpuStatus, download } from './common.js';

let gpu = null, parityJson = null, benchJson = null;

const list = s => s.split(',').map(x => x.trim()).filter(Boolean).map(Number);

async function parity() {
  const shapes = $('#shapes').value.split(',').map(x => x.trim()).filter(Boolean).map(x => x.split('x').map(Number));
  const request = { seed: +$('#seed').value, shapes, lengths: list($('#lengths').value), blockwise_lengths: list($('#blockwise').value) };
  $('#run').disabled = true;
  $('#summary').textContent = 'running every kernel…';
  const t0 = performance.now();
  try {
    parityJson = await wasm.parity(JSON.stringify(request), gpu.ok);
  } finally {
    $('#run').disabled = false;
  }
  const rows = JSON.parse(parityJson);
  const failed = rows.filter(r => !r.pass);
  $('#summary').innerHTML = `<span class="${failed.length ? 'fail' : 'pass'}">${rows.length - failed.length} of ${rows.length} checks passed</span> in ${((performance.now() - t0) / 1e3).toFixed(1)} s on ${rows[0] ? rows[0].device : '?'}`;
  // Failures first, then the rest in the command's order.
  const ordered = [...failed, ...rows.filter(r => r.pass)];
  $('#ptable').innerHTML = '<tr><th class="l">kernel</th><th class="l">shape</th><th>max abs err</th><th>max rel err</th><th class="l">result</th></tr>' +
    ordered.map(r => `<tr><td>${r.kernel}</td><td class="l">${r.shape}</td><td>${r.max_abs_err.toExponential(3)}</td><td>${r.max_rel_err.toExponential(3)}</td>
      <td class="l ${r.pass ? 'pass' : 'fail'}">${r.pass ? 'pass' : 'FAIL'}</td></tr>`).join('');
  $('#dl').disabled = false;
  return rows;
}

async function bench() {
  const request = {
    optimizer: $('#bopt').value, optim_bits: +$('#bits').value, params: +$('#params').value, tensors: +$('#tensors').value,
    repeats: +$('#repeats').value, variants: ['fused_multi_tensor', 'fused_per_tensor', 'unfused'],
  };
  $('#bench').disabled = true;
  try {
    benchJson = await wasm.bench_optim(JSON.stringify(request), gpu.ok);
  } finally {
    $('#bench').disabled = false;
  }
  const doc = JSON.parse(benchJson);
  const rs = doc.results;
  $('#btable').innerHTML = `<tr><td colspan="7" class="l">${doc.device.name}: copy ${doc.copy_gb_per_s.toFixed(1)} GB/s, streaming ${doc.streaming_gb_per_s.toFixed(1)} GB/s</td></tr>` +
    '<tr><th class="l">optimizer</th><th class="l">variant</th><th>bits</th><th>params</th><th>median ms</th><th>GB/s</th><th>% copy</th></tr>' +
    rs.map(r => `<tr><td>${r.optimizer}</td><td class="l">${r.variant}</td><td>${r.optim_bits}</td><td>${r.params}</td><td>${r.median_ms.toFixed(3)}</td>
      <td>${r.gb_per_s.toFixed(2)}</td><td>${(100 * r.fraction_of_copy_bw).toFixed(0)}%</td></tr>`).join('');
  const max = Math.max(...rs.map(r => r.gb_per_s), doc.copy_gb_per_s);
  $('#bchart').setAttribute('width', 480); $('#bchart').setAttribute('height', 30 + 26 * (rs.length + 1));
  $('#bchart').innerHTML = [{ variant: 'copy (device)', gb_per_s: doc.copy_gb_per_s }, ...rs].map((r, i) =>
    `<rect x="150" y="${10 + 26 * i}" width="${Math.max(1, 250 * r.gb_per_s / max)}" height="18" fill="${i ? '#2563eb' : '#94a3b8'}"/>
     <text x="144" y="${23 + 26 * i}" text-anchor="end">${r.variant}</text>
     <text x="${156 + 250 * r.gb_per_s / max}" y="${23 + 26 * i}">${r.gb_per_s.toFixed(1)} GB/s</text>`).join('');
  $('#bdl').disabled = false;
  return doc;
}

const ready = (async () => {
  await boot('parity.html');
  gpu = await gpuStatus();
  if (gpu.ok) {
    $('#adapter').textContent = gpu.name;
    $('#device').textContent = gpu.name;
  } else {
    message($('#msg'), 'warn', gpu.why + ' Parity and bench below run on the CPU backend instead.');
    $('#adapter').textContent = 'none: the CPU backend (wasm, one thread)';
  }
  $('#run').onclick = () => parity().catch(e => message($('#msg'), 'err', String(e.message || e)));
  $('#bench').onclick = () => bench().catch(e => message($('#msg'), 'err', String(e.message || e)));
  $('#dl').onclick = () => download('parity.json', parityJson);
  $('#bdl').onclick = () => download('bench-optim.json', benchJson);
})();

// The self-test web/test.sh runs: the parity suite on this adapter (every row must pass), and
// the bench's fused and unfused Adam (each must give a finite, positive rate). Without
// `webgpu` the page must say why and run both on the CPU backend.
window.selftest = async ({ webgpu }) => {
  await ready;
  const checks = webgpu
    ? [{ name: 'WebGPU device', pass: gpu.ok, detail: gpu.ok ? gpu.name : gpu.why }]
    : [{ name: 'no adapter: the page says so and runs on the CPU backend', pass: !gpu.ok && $('#msg').textContent.length > 0, detail: gpu.ok ? `an adapter opened: ${gpu.name}` : $('#msg').textContent }];
  if (gpu.ok === webgpu) {
    const rows = await parity();
    const failed = rows.filter(r => !r.pass);
    checks.push({
      name: 'every kernel matches the f64 reference', pass: rows.length > 0 && failed.length === 0,
      detail: `${rows.length - failed.length} of ${rows.length} rows pass` + (failed.length ? `; failing: ${failed.slice(0, 8).map(r => `${r.kernel} ${r.shape} (abs ${r.max_abs_err.toExponential(2)}, rel ${r.max_rel_err.toExponential(2)})`).join('; ')}` : ''),
    });
    $('#params').value = 1 << 20;
    $('#repeats').value = 5;
    const doc = await bench();
    const ok = doc.results.length === 3 && doc.results.every(r => isFinite(r.gb_per_s) && r.gb_per_s > 0);
    checks.push({
      name: 'fused and unfused Adam bench', pass: ok,
      detail: doc.results.map(r => `${r.variant} ${r.gb_per_s.toFixed(2)} GB/s`).join(', '),
    });
  }
  return { ok: checks.every(c => c.pass), checks, summary: `${checks.filter(c => c.pass).length} of ${checks.length} parity-page checks passed` };
};
