// What every page shares: the wasm library, the navigation bar, WebGPU detection, SVG line
// charts and JSON downloads. No framework and no bitmap backend: charts are SVG, maps canvas.
import init, * as wasm from './pkg/descent_web.js';

export { wasm };

const PAGES = [
  ['playground.html', 'Descent playground'],
  ['train.html', 'Train in your browser'],
  ['parity.html', 'Parity and bench on this GPU'],
];

/** Load the library and draw the navigation bar; resolves when the wasm is ready. */
export async function boot(here) {
  const nav = document.querySelector('nav');
  nav.innerHTML = '<b>descent</b>' + PAGES.map(([href, name]) =>
    `<a href="${href}"${href === here ? ' class="here"' : ''}>${name}</a>`).join('') +
    '<span class="device" id="device"></span>';
  await init();
}

/** The WebGPU device's name, or why there is none ({ok, name | why}). */
export async function gpuStatus() {
  if (!navigator.gpu) {
    return { ok: false, why: 'This browser has no WebGPU (navigator.gpu is missing). Chrome and Edge 113+ have it; Firefox and Safari only in recent versions, and Chromium on Linux may need --enable-unsafe-webgpu. The demos that run on the CPU backend still work.' };
  }
  try {
    // Browsers leave the adapter's description empty; vendor and architecture say enough.
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    const info = (adapter && adapter.info) || {};
    const label = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
    return { ok: true, name: await wasm.gpu_name(label) };
  } catch (e) {
    return { ok: false, why: `WebGPU is present but no device opened: ${e.message || e}.` };
  }
}

export function $(sel) { return document.querySelector(sel); }

export function message(el, kind, text) {
  el.innerHTML = '';
  if (!text) return;
  const d = document.createElement('div');
  d.className = `msg ${kind}`;
  d.textContent = text;
  el.appendChild(d);
}

export const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

function ticks(lo, hi, n, integer = false) {
  const span = hi - lo || 1;
  const step0 = span / n, mag = 10 ** Math.floor(Math.log10(step0));
  let step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0);
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(12));
  return out;
}

function fmt(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(1) : +v.toPrecision(4) + '';
}

/**
 * Draw line series into an <svg>: series = [{name, color, points: [[x, y], …], dots?}].
 * opts: {width, height, xLabel, yLabel, logY, integerX}
 */
export function lineChart(svg, series, opts = {}) {
  const W = opts.width || 520, H = opts.height || 300, L = 58, R = 12, T = 12, B = 38;
  svg.setAttribute('width', W); svg.setAttribute('height', H);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const ty = y => opts.logY ? Math.log10(Math.max(y, 1e-12)) : y;
  const pts = series.flatMap(s => s.points).filter(p => isFinite(p[0]) && isFinite(ty(p[1])));
  let x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0]));
  let y0 = Math.min(...pts.map(p => ty(p[1]))), y1 = Math.max(...pts.map(p => ty(p[1])));
  if (!pts.length) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  if (x0 === x1) { x0 -= 0.5; x1 += 0.5; }
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => T + (1 - (ty(y) - y0) / (y1 - y0)) * (H - T - B);
  const syRaw = v => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  let s = `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fff" stroke="#d8dde3"/>`;
  for (const v of ticks(x0, x1, 6, opts.integerX)) {
    s += `<line x1="${sx(v)}" x2="${sx(v)}" y1="${T}" y2="${H - B}" stroke="#eef0f3"/>`;
    s += `<text x="${sx(v)}" y="${H - B + 14}" text-anchor="middle">${fmt(v)}</text>`;
  }
  for (const v of ticks(y0, y1, 5)) {
    s += `<line x1="${L}" x2="${W - R}" y1="${syRaw(v)}" y2="${syRaw(v)}" stroke="#eef0f3"/>`;
    s += `<text x="${L - 6}" y="${syRaw(v) + 4}" text-anchor="end">${opts.logY ? '1e' + fmt(v) : fmt(v)}</text>`;
  }
  if (opts.xLabel) s += `<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${opts.xLabel}</text>`;
  if (opts.yLabel) s += `<text x="12" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 12 ${(T + H - B) / 2})">${opts.yLabel}</text>`;
  series.forEach((se, i) => {
    const c = se.color || COLORS[i % COLORS.length];
    const p = se.points.filter(q => isFinite(q[0]) && isFinite(ty(q[1])));
    if (!se.noLine && p.length > 1) s += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${p.map(q => `${sx(q[0])},${sy(q[1])}`).join(' ')}"/>`;
    if (se.dots || p.length === 1) for (const q of p) s += `<circle cx="${sx(q[0])}" cy="${sy(q[1])}" r="3" fill="${c}"/>`;
    s += `<rect x="${L + 10}" y="${T + 8 + 16 * i}" width="10" height="10" fill="${c}"/><text x="${L + 25}" y="${T + 17 + 16 * i}" style="fill:#1d232a">${se.name}</text>`;
  });
  svg.innerHTML = s;
}

/** Offer `text` as a file download. */
export function download(name, text) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

export function sleepFrame() { return new Promise(r => requestAnimationFrame(() => r())); }
