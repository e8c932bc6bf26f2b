import { boot, wasm, $, message, lineChart, COLORS } from './common.js';

// Each optimizer row: its key in the URL, its name, the JSON it sends, and its sliders
// (log10 of lr, and one hyperparameter).
const OPTIMIZERS = [
  { key: 'gd', name: 'GD', extra: null, json: (lr) => ({ name: 'sgd', lr }) },
  { key: 'mom', name: 'Momentum', extra: ['momentum', 0, 0.99, 0.9], json: (lr, m) => ({ name: 'sgd', lr, momentum: m }) },
  { key: 'rms', name: 'RMSProp', extra: ['alpha', 0.5, 0.999, 0.9], json: (lr, a) => ({ name: 'rmsprop', lr, alpha: a, eps: 1e-7 }) },
  { key: 'adam', name: 'Adam', extra: ['beta1', 0, 0.99, 0.9], json: (lr, b) => ({ name: 'adam', lr, betas: [b, 0.999] }) },
];

let FUNCS = [];
let state = {};

function defaults(f) {
  const width = f.window[1] - f.window[0];
  return {
    f: f.name, x: f.start[0], y: f.start[1], steps: f.dims === 1 ? 20 : 60, rho: 0.9,
    series: wasm.lecture_series().join(','),
    gd: { on: true, lr: f.lr }, mom: { on: true, lr: f.lr / 4, p: 0.9 },
    rms: { on: false, lr: width / 100, p: 0.9 }, adam: { on: true, lr: width / 40, p: 0.9 },
  };
}

function fromUrl() {
  const q = new URLSearchParams(location.search);
  const f = FUNCS.find(g => g.name === q.get('f')) || FUNCS.find(g => g.name === 'elongated');
  const s = defaults(f);
  const num = (k, d) => (q.has(k) && isFinite(+q.get(k)) ? +q.get(k) : d);
  s.x = num('x', s.x); s.y = num('y', s.y); s.steps = Math.max(1, Math.min(2000, Math.round(num('steps', s.steps))));
  s.rho = num('rho', s.rho);
  if (q.has('series')) s.series = q.get('series');
  for (const o of OPTIMIZERS) {
    if (!q.has(o.key)) continue;
    const [on, lr, p] = q.get(o.key).split(',').map(Number);
    s[o.key] = { on: on === 1, lr: isFinite(lr) && lr > 0 ? lr : s[o.key].lr, p: isFinite(p) ? p : s[o.key].p };
  }
  return s;
}

function toUrl() {
  const q = new URLSearchParams({ f: state.f, x: state.x, y: state.y, steps: state.steps });
  for (const o of OPTIMIZERS) {
    const r = state[o.key];
    q.set(o.key, [r.on ? 1 : 0, +r.lr.toPrecision(4), ...(o.extra ? [r.p] : [])].join(','));
  }
  q.set('rho', state.rho);
  q.set('series', state.series);
  history.replaceState(null, '', '?' + q.toString().replaceAll('%2C', ','));
}

function controls() {
  const fsel = $('#fn');
  fsel.innerHTML = FUNCS.map(f => `<option value="${f.name}">${f.name} (${f.dims}-D)</option>`).join('');
  fsel.value = state.f;
  const fn = FUNCS.find(f => f.name === state.f);
  $('#formula').textContent = 'f = ' + fn.formula;
  $('#x0').value = state.x; $('#y0').value = state.y; $('#y0').disabled = fn.dims === 1;
  $('#steps').value = state.steps;
  $('#opts').innerHTML = OPTIMIZERS.map((o, i) => {
    const r = state[o.key];
    return `<div class="opt"><label><input type="checkbox" data-k="${o.key}" data-f="on" ${r.on ? 'checked' : ''}>
      <span class="swatch" style="background:${COLORS[i]}"></span>${o.name}</label>
      <label>lr <input type="range" min="-4" max="1.3" step="0.01" value="${Math.log10(r.lr)}" data-k="${o.key}" data-f="lr">
      <span class="mono">${+r.lr.toPrecision(3)}</span></label>
      ${o.extra ? `<span></span><label>${o.extra[0]} <input type="range" min="${o.extra[1]}" max="${o.extra[2]}" step="0.01" value="${r.p}" data-k="${o.key}" data-f="p">
      <span class="mono">${r.p}</span></label>` : ''}</div>`;
  }).join('');
  $('#rho').value = state.rho; $('#rhov').textContent = state.rho; $('#series').value = state.series;
}

let grid = null; // the contour values of the last window drawn
let lastWindow = null;

function windowOf(fn, paths) {
  let [x0, x1, y0, y1] = fn.window;
  if (fn.dims === 2) {
    for (const p of paths) for (const it of p.iterates) {
      const [x, y] = it.x;
      if (!isFinite(x) || !isFinite(y) || Math.abs(x) > 1e6 || Math.abs(y) > 1e6) continue;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
  } else {
    for (const p of paths) for (const it of p.iterates) {
      const x = it.x[0];
      if (isFinite(x) && Math.abs(x) < 1e6) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); }
    }
  }
  return [x0, x1, y0, y1];
}

// Colours for the filled contours, low to high (a viridis-like ramp).
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function ramp(t) {
  const u = Math.min(0.999, Math.max(0, t)) * (RAMP.length - 1), i = Math.floor(u), f = u - i;
  return RAMP[i].map((c, k) => c + (RAMP[i + 1][k] - c) * f);
}

function drawMap(fn, paths, upto) {
  const cv = $('#map'), ctx = cv.getContext('2d'), W = cv.width, H = cv.height;
  const win = windowOf(fn, paths);
  lastWindow = win;
  const [x0, x1] = win;
  if (fn.dims === 2) {
    const [, , y0, y1] = win;
    const key = fn.name + win.join(',');
    const nx = 190, ny = 120;
    if (!grid || grid.key !== key) {
      const xs = Float32Array.from({ length: nx }, (_, i) => x0 + (x1 - x0) * (i + 0.5) / nx);
      const ys = Float32Array.from({ length: ny }, (_, j) => y1 - (y1 - y0) * (j + 0.5) / ny);
      grid = { key, values: wasm.grid(fn.name, xs, ys) };
    }
    const v = grid.values;
    let lo = Infinity, hi = -Infinity;
    for (const a of v) if (isFinite(a)) { lo = Math.min(lo, a); hi = Math.max(hi, a); }
    const level = a => Math.log1p(Math.max(0, a - lo)) / Math.log1p(hi - lo || 1);
    const img = ctx.createImageData(nx, ny);
    for (let i = 0; i < nx * ny; i++) {
      const t = level(v[i]), band = Math.floor(t * 16);
      const c = ramp(t).map(x => x * (band % 2 ? 0.92 : 1));
      img.data.set([...c, 255], 4 * i);
    }
    const off = new OffscreenCanvas(nx, ny);
    off.getContext('2d').putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(off, 0, 0, W, H);
    const sx = x => (x - x0) / (x1 - x0) * W, sy = y => (y1 - y) / (y1 - y0) * H;
    for (const [mx, my] of fn.minima) {
      ctx.fillStyle = '#fff'; ctx.font = '16px sans-serif'; ctx.fillText('★', sx(mx) - 6, sy(my) + 6);
    }
    paths.forEach(p => drawPath(ctx, p, upto, it => [sx(it.x[0]), sy(it.x[1])]));
    axes(ctx, W, H, [x0, x1], [y0, y1]);
  } else {
    const n = 400;
    const xs = Float32Array.from({ length: n }, (_, i) => x0 + (x1 - x0) * i / (n - 1));
    const fx = wasm.grid(fn.name, xs, new Float32Array(0));
    const fin = [...fx].filter(isFinite);
    let y0 = Math.min(...fin), y1 = Math.max(...fin);
    const pad = (y1 - y0) * 0.05 || 1; y0 -= pad; y1 += pad;
    const sx = x => (x - x0) / (x1 - x0) * W, sy = y => (y1 - y) / (y1 - y0) * H;
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, W, H);
    ctx.strokeStyle = '#334155'; ctx.lineWidth = 2; ctx.beginPath();
    xs.forEach((x, i) => (i ? ctx.lineTo(sx(x), sy(fx[i])) : ctx.moveTo(sx(x), sy(fx[i]))));
    ctx.stroke();
    paths.forEach(p => drawPath(ctx, p, upto, it => [sx(it.x[0]), sy(it.f)]));
    axes(ctx, W, H, [x0, x1], [y0, y1]);
  }
}

function drawPath(ctx, p, upto, at) {
  const pts = p.iterates.slice(0, upto + 1).map(at).filter(([a, b]) => isFinite(a) && isFinite(b));
  ctx.strokeStyle = p.color; ctx.fillStyle = p.color; ctx.lineWidth = 2;
  ctx.beginPath();
  pts.forEach(([a, b], i) => (i ? ctx.lineTo(a, b) : ctx.moveTo(a, b)));
  ctx.stroke();
  for (const [a, b] of pts) { ctx.beginPath(); ctx.arc(a, b, 2.6, 0, 7); ctx.fill(); }
  if (pts.length) { ctx.strokeStyle = '#fff'; ctx.beginPath(); ctx.arc(...pts[0], 5, 0, 7); ctx.stroke(); }
}

function axes(ctx, W, H, [x0, x1], [y0, y1]) {
  ctx.fillStyle = 'rgba(255,255,255,0.85)';
  ctx.fillRect(0, H - 18, W, 18);
  ctx.fillStyle = '#1d232a'; ctx.font = '11px sans-serif';
  ctx.fillText(`x ∈ [${+x0.toPrecision(3)}, ${+x1.toPrecision(3)}]   ${isFinite(y0) ? `y ∈ [${+y0.toPrecision(3)}, ${+y1.toPrecision(3)}]` : ''}`, 6, H - 5);
}

let animation = 0;

export function run() {
  const fn = FUNCS.find(f => f.name === state.f);
  const runs = OPTIMIZERS.map((o, i) => ({ o, i })).filter(({ o }) => state[o.key].on).map(({ o, i }) => ({
    label: o.name, color: COLORS[i], optimizer: o.json(state[o.key].lr, state[o.key].p),
  }));
  const start = fn.dims === 1 ? [state.x] : [state.x, state.y];
  let paths = [];
  try {
    const out = JSON.parse(wasm.descend(JSON.stringify({ function: fn.name, start, steps: state.steps, runs })));
    paths = out.map((p, k) => ({ ...p, color: runs[k].color }));
    message($('#msg'), '', '');
  } catch (e) {
    message($('#msg'), 'err', String(e.message || e));
  }
  $('#legend').innerHTML = '<table><tr><th class="l">optimizer</th><th>lr</th><th>steps</th><th>final point</th><th>f</th></tr>' +
    paths.map(p => {
      const last = p.iterates[p.iterates.length - 1];
      return `<tr><td class="l"><span class="swatch" style="background:${p.color}"></span> ${p.label}</td>
        <td>${+runs.find(r => r.label === p.label).optimizer.lr.toPrecision(3)}</td><td>${last.t}</td>
        <td class="mono">(${last.x.map(v => +v.toPrecision(5)).join(', ')})</td><td class="mono">${+last.f.toPrecision(5)}</td></tr>`;
    }).join('') + '</table>';
  // Draw the walks as they go: a few steps per frame.
  const id = ++animation, total = state.steps, per = Math.max(1, Math.ceil(total / 60));
  let upto = 0;
  const frame = () => {
    if (id !== animation) return;
    drawMap(fn, paths, upto);
    if (upto < total) { upto += per; requestAnimationFrame(frame); }
  };
  frame();
  toUrl();
  return paths;
}

function ewa() {
  const series = state.series.split(',').map(Number).filter(isFinite);
  const raw = wasm.ewa(Float64Array.from(series), state.rho, false);
  const corrected = wasm.ewa(Float64Array.from(series), state.rho, true);
  const pts = a => [...a].map((v, i) => [i + 1, v]);
  lineChart($('#ewa'), [
    { name: 'series s_t', points: pts(series), dots: true, noLine: true, color: '#334155' },
    { name: `EWA, ρ = ${state.rho}`, points: pts(raw), color: COLORS[0] },
    { name: 'bias-corrected', points: pts(corrected), color: COLORS[1] },
  ], { width: 620, height: 260, xLabel: 't', integerX: true });
  toUrl();
}

function wire() {
  $('#fn').onchange = () => { const f = FUNCS.find(g => g.name === $('#fn').value); state = { ...defaults(f), rho: state.rho, series: state.series }; controls(); run(); };
  $('#x0').onchange = () => { state.x = +$('#x0').value; run(); };
  $('#y0').onchange = () => { state.y = +$('#y0').value; run(); };
  $('#steps').onchange = () => { state.steps = Math.max(1, Math.min(2000, +$('#steps').value | 0)); run(); };
  $('#opts').oninput = (e) => {
    const t = e.target, r = state[t.dataset.k];
    if (t.dataset.f === 'on') r.on = t.checked;
    if (t.dataset.f === 'lr') { r.lr = 10 ** +t.value; t.nextElementSibling.textContent = +r.lr.toPrecision(3); }
    if (t.dataset.f === 'p') { r.p = +t.value; t.nextElementSibling.textContent = r.p; }
    run();
  };
  $('#reset').onclick = () => { state = { ...defaults(FUNCS.find(f => f.name === state.f)), rho: state.rho, series: state.series }; controls(); run(); };
  $('#map').onclick = (e) => {
    const fn = FUNCS.find(f => f.name === state.f), cv = $('#map'), r = cv.getBoundingClientRect();
    const [x0, x1, y0, y1] = lastWindow || windowOf(fn, []);
    state.x = +(x0 + (e.clientX - r.left) / r.width * (x1 - x0)).toPrecision(4);
    if (fn.dims === 2) state.y = +(y1 - (e.clientY - r.top) / r.height * (y1 - y0)).toPrecision(4);
    controls(); run();
  };
  $('#rho').oninput = () => { state.rho = +$('#rho').value; $('#rhov').textContent = state.rho; ewa(); };
  $('#series').onchange = () => { state.series = $('#series').value; ewa(); };
}

// The self-test web/test.sh runs: the first steps of gradient descent against the lecture.
window.selftest = async () => {
  await ready;
  const checks = JSON.parse(wasm.selftest_playground());
  return { ok: checks.every(c => c.pass), checks, summary: `${checks.filter(c => c.pass).length} of ${checks.length} playground checks passed` };
};

const ready = boot('playground.html');
await ready;
FUNCS = JSON.parse(wasm.functions());
state = fromUrl();
controls();
wire();
run();
ewa();
$('#device').textContent = 'the playground runs on the CPU backend (wasm, one thread)';
