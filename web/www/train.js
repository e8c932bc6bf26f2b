import { boot, wasm, $, message, gpuStatus, lineChart } from './common.js';

const FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
const LR = { sgd: 0.01, adagrad: 0.01, rmsprop: 0.001, adam: 0.001, adamw: 0.001 };
let files = null, stop = false, gpu = null;

async function data() {
  if (!files) {
    files = await Promise.all(FILES.map(async f => {
      const r = await fetch(`data/${f}.gz`);
      if (!r.ok) throw new Error(`data/${f}.gz: ${r.status} (build the page with web/build.sh)`);
      return new Uint8Array(await r.arrayBuffer());
    }));
  }
  return files;
}

function draw(rows) {
  const e = r => r.epoch;
  lineChart($('#loss'), [
    { name: 'train loss', points: rows.map(r => [e(r), r.train_loss]), dots: true },
    { name: 'test loss', points: rows.map(r => [e(r), r.test_loss]), dots: true },
  ], { width: 400, height: 270, xLabel: 'epoch', yLabel: 'cross-entropy', integerX: true });
  lineChart($('#acc'), [
    { name: 'train accuracy', points: rows.map(r => [e(r), 100 * r.train_accuracy]), dots: true },
    { name: 'test accuracy', points: rows.map(r => [e(r), 100 * r.test_accuracy]), dots: true },
  ], { width: 400, height: 270, xLabel: 'epoch', yLabel: 'accuracy (%)', integerX: true });
  $('#rows').innerHTML = '<tr><th>epoch</th><th>train loss</th><th>train acc</th><th>test loss</th><th>test acc</th><th>seconds</th></tr>' +
    rows.map(r => `<tr><td>${r.epoch}</td><td>${r.train_loss.toFixed(6)}</td><td>${(100 * r.train_accuracy).toFixed(2)}%</td>
      <td>${r.test_loss.toFixed(6)}</td><td>${(100 * r.test_accuracy).toFixed(2)}%</td><td>${r.seconds.toFixed(2)}</td></tr>`).join('');
}

/** Train with the page's settings; resolves to the epoch rows. */
async function train(epochs) {
  const name = $('#opt').value;
  const request = {
    optimizer: { name, lr: +$('#lr').value }, batch_size: +$('#bs').value, seed: +$('#seed').value,
    hidden: [128, 128], activation: 'relu', shuffle: 'randperm', epochs,
  };
  const useGpu = $('#dev').value === 'gpu';
  $('#go').disabled = true; $('#stop').disabled = false; stop = false;
  const rows = [];
  draw(rows);
  try {
    $('#status').textContent = 'fetching the dataset…';
    const f = await data();
    $('#status').textContent = useGpu ? 'opening the GPU and compiling the kernels…' : 'building the model…';
    const t = await wasm.WebTrainer.start(JSON.stringify(request), f, useGpu);
    $('#device').textContent = t.device;
    for (let e = 1; e <= epochs && !stop; e++) {
      $('#status').textContent = `epoch ${e} of ${epochs} on ${t.device}`;
      rows.push(JSON.parse(await t.epoch()));
      draw(rows);
    }
    $('#status').textContent = `done: ${rows.length} epoch(s) on ${t.device}`;
    t.free();
  } catch (err) {
    message($('#msg'), 'err', String(err.message || err));
    throw err;
  } finally {
    $('#go').disabled = false; $('#stop').disabled = true;
  }
  return rows;
}

const ready = (async () => {
  await boot('train.html');
  gpu = await gpuStatus();
  if (!gpu.ok) {
    message($('#msg'), 'warn', gpu.why);
    $('#dev').value = 'cpu';
    $('#dev').querySelector('option[value=gpu]').disabled = true;
  } else {
    $('#device').textContent = gpu.name;
  }
  $('#opt').onchange = () => { $('#lr').value = LR[$('#opt').value]; };
  $('#go').onclick = () => train(+$('#epochs').value).catch(() => {});
  $('#stop').onclick = () => { stop = true; };
  draw([]);
})();

// The self-test web/test.sh runs: as many epochs as the native CPU run it is given (web/test.sh
// runs 3) with the page's defaults (Adam, lr 1e-3, batch 64, seed 0), each checked against it. With `webgpu` it must run on the
// browser's GPU; without, the page must say why and train on the CPU backend.
window.selftest = async ({ native_epochs, webgpu }) => {
  await ready;
  const checks = [];
  if (webgpu) {
    checks.push({ name: 'WebGPU device', pass: gpu.ok, detail: gpu.ok ? gpu.name : gpu.why });
  } else {
    const said = $('#msg').textContent;
    checks.push({ name: 'no adapter: the page says so and falls back to the CPU backend', pass: !gpu.ok && said.length > 0 && $('#dev').value === 'cpu', detail: gpu.ok ? `an adapter opened: ${gpu.name}` : said });
  }
  if (gpu.ok === webgpu) {
    const rows = await train(native_epochs.length);
    checks.push(...JSON.parse(wasm.check_training(JSON.stringify(native_epochs), JSON.stringify(rows))));
  }
  return { ok: checks.every(c => c.pass), checks, summary: `${checks.filter(c => c.pass).length} of ${checks.length} training checks passed` };
};
