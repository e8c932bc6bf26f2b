//! Parameter groups in one fused dispatch: [`GroupedStep`], each group's kernel struct and the
//! runs of its tensors, which the GPU kernels' grouped entries (`step_f32_groups`, `step_bf16_groups`) read from
//! two device tables and the CPU twin walks run by run.

use super::optim_kernel::OptimStep;
use crate::tensor::View;

/// One fused step over runs of the arena, each with its group's hyperparameters: PyTorch's
/// `param_groups` in one dispatch. Each element takes the hyperparameters of the run it is in,
/// and an element in no run is left as it is. The GPU kernel finds each element's run in `runs_table`
/// and its group's struct in `groups_table` (both written by the backend from
/// [`GroupedStep::runs_words`] and [`GroupedStep::group_words`]); the CPU twin walks `runs`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupedStep {
    /// One step per group, all of one kernel.
    pub steps: Vec<OptimStep>,
    /// Runs of elements of the step's `params` view, sorted and apart, each with its group.
    pub runs: Vec<(std::ops::Range<usize>, usize)>,
    /// Device buffer for the runs: at least `1 + 3 · runs` words.
    pub runs_table: View,
    /// Device buffer for the groups' structs: at least `groups · size / 4` words.
    pub groups_table: View,
}

impl GroupedStep {
    /// Whether the step is well formed for `n` elements: one kernel, runs sorted, apart, inside
    /// `0..n` and naming a group, tables large enough. Under bfloat16 state (`pairs`) every run
    /// starts at an even element.
    pub fn check(&self, n: usize, pairs: bool) -> Result<(), String> {
        let first = self.steps.first().ok_or("a grouped step needs at least one group")?;
        if self.steps.iter().any(|s| s.kernel().name != first.kernel().name) {
            return Err("a grouped step's groups must use one kernel".into());
        }
        let mut end = 0;
        for (r, g) in &self.runs {
            if r.start < end || r.start >= r.end || r.end > n || *g >= self.steps.len() {
                return Err(format!(
                    "run {r:?} of group {g} is out of order, empty, past {n} elements, or of no group"
                ));
            }
            if pairs && r.start % 2 == 1 {
                return Err(format!("run {r:?} starts at an odd element: bfloat16 state is stepped in pairs"));
            }
            end = r.end;
        }
        if self.runs_table.len < 1 + 3 * self.runs.len() || self.groups_table.len < self.group_words().len() {
            return Err("a grouped step's tables are too small for its runs and groups".into());
        }
        Ok(())
    }

    /// `[count, then per run: start, end, group]`, as `shaders/optim.wgsl` reads RUNS.
    pub fn runs_words(&self) -> Vec<u32> {
        let mut w = vec![self.runs.len() as u32];
        for (r, g) in &self.runs {
            w.extend([r.start as u32, r.end as u32, *g as u32]);
        }
        w
    }

    /// Each run as an ungrouped step takes it: its group's step, and the run's parts of
    /// `params`, `grads` and the state slots (bfloat16 slots count elements, as their views do).
    /// What the CPU twin steps, and what a GPU launches past one binding.
    pub fn run_steps<'a>(
        &'a self,
        params: View,
        grads: View,
        state: &'a [View],
    ) -> impl Iterator<Item = (&'a OptimStep, View, View, Vec<View>)> + 'a {
        self.runs.iter().map(move |(r, k)| {
            let slots = state.iter().map(|v| View { offset: v.offset + r.start, len: r.len(), ..*v }).collect();
            (&self.steps[*k], params.slice(r.start, r.len()), grads.slice(r.start, r.len()), slots)
        })
    }

    /// Each group's parameter struct, one after another, as GROUPS reads them.
    pub fn group_words(&self) -> Vec<u32> {
        self.steps.iter().flat_map(|s| bytemuck::pod_collect_to_vec::<u8, u32>(s.param_bytes())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grouped_step_checks_its_runs_and_tables() {
        let table = |len| View { len, ..View::whole(0, len) };
        let sgd = OptimStep::ALL[0];
        let words = sgd.kernel().size / 4;
        let g = |runs: Vec<(std::ops::Range<usize>, usize)>| GroupedStep {
            steps: vec![sgd, sgd],
            runs,
            runs_table: table(7),
            groups_table: table(2 * words),
        };
        let ok = g(vec![(0..3, 1), (4..9, 0)]);
        assert_eq!(ok.check(10, true), Ok(()));
        assert_eq!(ok.runs_words(), vec![2, 0, 3, 1, 4, 9, 0]);
        assert_eq!(ok.group_words().len(), 2 * words);
        assert!(g(vec![(4..9, 0), (0..3, 1)]).check(10, false).unwrap_err().contains("out of order"));
        assert!(g(vec![(0..3, 2)]).check(10, false).is_err(), "a group that is not there");
        assert!(g(vec![(0..11, 0)]).check(10, false).is_err(), "past the arena");
        assert!(g(vec![(1..3, 0)]).check(10, true).unwrap_err().contains("odd"));
        assert_eq!(g(vec![(1..3, 0)]).check(10, false), Ok(()), "f32 state has no pairs");
        let small = GroupedStep { runs_table: table(3), ..ok.clone() };
        assert!(small.check(10, false).unwrap_err().contains("too small"));
        let mixed = GroupedStep { steps: vec![sgd, OptimStep::ALL[3]], ..ok };
        assert!(mixed.check(10, false).unwrap_err().contains("one kernel"));
    }
}
