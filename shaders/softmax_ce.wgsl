// Softmax cross-entropy, forward and backward in one pass, in one workgroup: each invocation
// takes rows lid, lid + 256, …; per row the max is subtracted before exp for stability. Writes
// the mean loss over the rows whose label is not IGNORE, d(mean loss)/d(logits) =
// (softmax − onehot) / kept rows (zero on ignored rows), and adds [Σ row loss, argmax-correct
// count] to METRICS. Labels are class indices stored as f32, as PyTorch's `cross_entropy`
// with `ignore_index`. A label that is neither IGNORE nor an integer in [0, cols) makes its
// row's gradient, the loss and the loss sum NaN: never a number for a class it did not name.
// With every row ignored the loss is NaN (0/0), as PyTorch's.

struct SoftmaxCeParams {
    rows: u32, cols: u32, logits_off: u32, labels_off: u32,
    loss_off: u32, d_off: u32, metrics_off: u32, flags: u32, // flags: 1 loss, 2 dlogits, 4 metrics
    ignore_index: f32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> P: SoftmaxCeParams;
@group(0) @binding(1) var<storage, read> LOGITS: array<f32>;
@group(0) @binding(2) var<storage, read> LABELS: array<f32>;
@group(0) @binding(3) var<storage, read_write> LOSS: array<f32>;
@group(0) @binding(4) var<storage, read_write> DLOGITS: array<f32>;
@group(0) @binding(5) var<storage, read_write> METRICS: array<f32>;

var<workgroup> loss_part: array<f32, 256>;
var<workgroup> correct_part: array<f32, 256>;
var<workgroup> count_part: array<u32, 256>;

// A class index: an integer in [0, cols) (false for NaN and infinities).
fn is_class(label: f32) -> bool {
    return label >= 0.0 && label < f32(P.cols) && floor(label) == label;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    // The rows that count towards the mean.
    var kept = 0u;
    for (var r = lid.x; r < P.rows; r += 256u) {
        kept += select(1u, 0u, LABELS[P.labels_off + r] == P.ignore_index);
    }
    count_part[lid.x] = kept;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (lid.x < w) { count_part[lid.x] += count_part[lid.x + w]; }
        workgroupBarrier();
    }
    let n = count_part[0];
    workgroupBarrier();
    let inv = 1.0 / f32(max(n, 1u));
    var total = 0.0;
    var correct = 0.0;
    var bad = 0u;
    for (var r = lid.x; r < P.rows; r += 256u) {
        let base = P.logits_off + r * P.cols;
        let lf = LABELS[P.labels_off + r];
        let ignored = lf == P.ignore_index;
        let valid = !ignored && is_class(lf);
        bad += select(0u, 1u, !ignored && !valid);
        let label = select(P.cols, u32(lf), valid); // cols: no class
        var best = LOGITS[base];
        var arg = 0u;
        for (var c = 1u; c < P.cols; c++) {
            let v = LOGITS[base + c];
            if (v > best) { best = v; arg = c; }
        }
        var s = 0.0;
        for (var c = 0u; c < P.cols; c++) { s += exp(LOGITS[base + c] - best); }
        if (valid) {
            total += log(s) + best - LOGITS[base + label];
            correct += select(0.0, 1.0, arg == label);
        }
        if ((P.flags & 2u) != 0u) {
            for (var c = 0u; c < P.cols; c++) {
                let p = exp(LOGITS[base + c] - best) / s;
                var d = (p - select(0.0, 1.0, c == label)) * inv;
                if (ignored) { d = 0.0; }
                if (!ignored && !valid) { d = nan_f32(); }
                DLOGITS[P.d_off + r * P.cols + c] = d;
            }
        }
    }
    loss_part[lid.x] = total;
    correct_part[lid.x] = correct;
    count_part[lid.x] = bad;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (lid.x < w) {
            loss_part[lid.x] += loss_part[lid.x + w];
            correct_part[lid.x] += correct_part[lid.x + w];
            count_part[lid.x] += count_part[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let poisoned = count_part[0] > 0u;
        if ((P.flags & 1u) != 0u) {
            LOSS[P.loss_off] = select(loss_part[0] * inv, nan_f32(), poisoned || n == 0u);
        }
        if ((P.flags & 4u) != 0u) {
            METRICS[P.metrics_off] = select(METRICS[P.metrics_off] + loss_part[0], nan_f32(), poisoned);
            METRICS[P.metrics_off + 1u] += correct_part[0];
        }
    }
}
