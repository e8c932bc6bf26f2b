// Softmax cross-entropy, forward and backward in one pass, in one workgroup: each invocation
// takes rows lid, lid + 256, …; per row the max is subtracted before exp for stability. Writes
// the mean loss, d(mean loss)/d(logits) = (softmax − onehot) / rows, and adds
// [Σ row loss, argmax-correct count] to METRICS. Labels are class indices stored as f32.

struct SoftmaxCeParams {
    rows: u32, cols: u32, logits_off: u32, labels_off: u32,
    loss_off: u32, d_off: u32, metrics_off: u32, flags: u32, // flags: 1 loss, 2 dlogits, 4 metrics
}

@group(0) @binding(0) var<uniform> P: SoftmaxCeParams;
@group(0) @binding(1) var<storage, read> LOGITS: array<f32>;
@group(0) @binding(2) var<storage, read> LABELS: array<f32>;
@group(0) @binding(3) var<storage, read_write> LOSS: array<f32>;
@group(0) @binding(4) var<storage, read_write> DLOGITS: array<f32>;
@group(0) @binding(5) var<storage, read_write> METRICS: array<f32>;

var<workgroup> loss_part: array<f32, 256>;
var<workgroup> correct_part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    var total = 0.0;
    var correct = 0.0;
    let inv = 1.0 / f32(P.rows);
    for (var r = lid.x; r < P.rows; r += 256u) {
        let base = P.logits_off + r * P.cols;
        let label = u32(LABELS[P.labels_off + r]);
        var best = LOGITS[base];
        var arg = 0u;
        for (var c = 1u; c < P.cols; c++) {
            let v = LOGITS[base + c];
            if (v > best) { best = v; arg = c; }
        }
        var s = 0.0;
        for (var c = 0u; c < P.cols; c++) { s += exp(LOGITS[base + c] - best); }
        total += log(s) + best - LOGITS[base + min(label, P.cols - 1u)];
        correct += select(0.0, 1.0, arg == label);
        if ((P.flags & 2u) != 0u) {
            for (var c = 0u; c < P.cols; c++) {
                let p = exp(LOGITS[base + c] - best) / s;
                DLOGITS[P.d_off + r * P.cols + c] = (p - select(0.0, 1.0, c == label)) * inv;
            }
        }
    }
    loss_part[lid.x] = total;
    correct_part[lid.x] = correct;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (lid.x < w) {
            loss_part[lid.x] += loss_part[lid.x + w];
            correct_part[lid.x] += correct_part[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        if ((P.flags & 1u) != 0u) { LOSS[P.loss_off] = loss_part[0] * inv; }
        if ((P.flags & 4u) != 0u) {
            METRICS[P.metrics_off] += loss_part[0];
            METRICS[P.metrics_off + 1u] += correct_part[0];
        }
    }
}
