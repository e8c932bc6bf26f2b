// Schedule-Free's passes that are not steps. S0: z (S1 is a placeholder). The switch between
// train mode (the parameters hold y) and eval mode (they hold x): p <- p + weight * (z - p), as
// the reference's lerp. The init pass, before the first step: z <- p, p unchanged.

struct SchedulefreeModeParams {
    weight: f32,
    init: u32,
}

alias Hyper = SchedulefreeModeParams;

struct SchedulefreeModeUniform { arena: Arena, h: SchedulefreeModeParams }

@group(0) @binding(0) var<uniform> P: SchedulefreeModeUniform;

fn update(h: Hyper, p: f32, g: f32, s: vec3<f32>) -> Update {
    if (h.init != 0u) { return Update(p, vec3<f32>(p, 0.0, 0.0)); }
    return Update(p + h.weight * (s.x - p), s);
}
