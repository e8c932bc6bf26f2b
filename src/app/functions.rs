//! The lecture's test functions of one or two variables, written once as autograd expressions.
//!
//! Each function is built from tape ops, so `descent descend` takes its gradients from the
//! autograd (not from hand-written derivatives), and the plots evaluate the same expression on
//! a whole grid of points at once (every op is elementwise).

use crate::autograd::{Tape, Var};
use crate::backend::{Device, UnaryOp};
use crate::message::Setting;
use crate::said;
use anyhow::{bail, ensure, Result};

/// A named function with the lecture's default start and learning rate.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub name: &'static str,
    pub formula: &'static str,
    /// 1 or 2 variables.
    pub dims: usize,
    /// The default starting point (y ignored for 1-D functions).
    pub start: [f64; 2],
    /// The learning rate the lecture (or the classic demo) uses.
    pub lr: f64,
    /// The region drawn when no iterate leaves it: [x_min, x_max, y_min, y_max].
    pub window: [f64; 4],
    /// Known minima of the 2-D functions, marked on contour maps.
    pub minima: &'static [(f64, f64)],
    build: fn(&mut Expr, &[Var]) -> Result<Var>,
}

pub const FUNCTIONS: [Function; 12] = [
    Function {
        name: "square",
        formula: "x^2",
        dims: 1,
        start: [70.0, 0.0],
        lr: 0.1,
        window: [-10.0, 10.0, 0.0, 0.0],
        minima: &[],
        build: |e, v| e.sq(v[0]),
    },
    Function {
        name: "square9",
        formula: "9x^2",
        dims: 1,
        start: [70.0, 0.0],
        lr: 0.1,
        window: [-10.0, 10.0, 0.0, 0.0],
        minima: &[],
        build: |e, v| {
            let s = e.sq(v[0])?;
            e.scale(s, 9.0)
        },
    },
    Function {
        name: "square20",
        formula: "20x^2",
        dims: 1,
        start: [2.0, 0.0],
        lr: 0.1,
        window: [-3.0, 3.0, 0.0, 0.0],
        minima: &[],
        build: |e, v| {
            let s = e.sq(v[0])?;
            e.scale(s, 20.0)
        },
    },
    Function {
        name: "composite",
        formula: "g(f(x)), f(x) = x^2 + 3x, g(u) = u^3 + u + 2",
        dims: 1,
        start: [3.0, 0.0],
        lr: 0.0001,
        window: [-4.0, 3.5, 0.0, 0.0],
        minima: &[],
        build: |e, v| {
            let x2 = e.sq(v[0])?;
            let x3 = e.scale(v[0], 3.0)?;
            let u = e.add(x2, x3)?;
            let u2 = e.sq(u)?;
            let u3 = e.mul(u2, u)?;
            let g = e.add(u3, u)?;
            e.add_scalar(g, 2.0)
        },
    },
    Function {
        name: "log_square",
        formula: "log(x^2)",
        dims: 1,
        start: [9.0, 0.0],
        lr: 10.0,
        window: [-15.0, 15.0, 0.0, 0.0],
        minima: &[],
        build: |e, v| {
            let s = e.sq(v[0])?;
            e.unary(UnaryOp::Log, s)
        },
    },
    Function {
        name: "double_well",
        formula: "(x^2 - 1)^2 - 0.3x",
        dims: 1,
        start: [-1.5, 0.0],
        lr: 0.2,
        window: [-2.0, 2.0, 0.0, 0.0],
        minima: &[],
        build: |e, v| {
            let s = e.sq(v[0])?;
            let s1 = e.add_scalar(s, -1.0)?;
            let w = e.sq(s1)?;
            let tilt = e.scale(v[0], 0.3)?;
            e.sub(w, tilt)
        },
    },
    Function {
        name: "bowl",
        formula: "x^2 + y^2",
        dims: 2,
        start: [6.0, 9.0],
        lr: 0.1,
        window: [-10.0, 10.0, -10.0, 10.0],
        minima: &[(0.0, 0.0)],
        build: |e, v| {
            let a = e.sq(v[0])?;
            let b = e.sq(v[1])?;
            e.add(a, b)
        },
    },
    Function {
        name: "rosenbrock",
        formula: "(1 - x)^2 + 100(y - x^2)^2",
        dims: 2,
        start: [-1.5, 2.0],
        lr: 0.001,
        window: [-2.0, 2.0, -1.0, 3.0],
        minima: &[(1.0, 1.0)],
        build: |e, v| {
            let one_minus_x = e.scale(v[0], -1.0)?;
            let one_minus_x = e.add_scalar(one_minus_x, 1.0)?;
            let a = e.sq(one_minus_x)?;
            let x2 = e.sq(v[0])?;
            let d = e.sub(v[1], x2)?;
            let b = e.sq(d)?;
            let b = e.scale(b, 100.0)?;
            e.add(a, b)
        },
    },
    Function {
        name: "beale",
        formula: "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
        dims: 2,
        start: [1.0, 1.5],
        lr: 0.001,
        window: [-4.5, 4.5, -4.5, 4.5],
        minima: &[(3.0, 0.5)],
        build: |e, v| {
            let (x, y) = (v[0], v[1]);
            let mut total = None;
            let mut xy = x;
            for c in [1.5, 2.25, 2.625] {
                xy = e.mul(xy, y)?;
                let t = e.sub(xy, x)?;
                let t = e.add_scalar(t, c)?;
                let t = e.sq(t)?;
                total = Some(match total {
                    None => t,
                    Some(s) => e.add(s, t)?,
                });
            }
            Ok(total.expect("three terms"))
        },
    },
    Function {
        name: "himmelblau",
        formula: "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        dims: 2,
        start: [0.0, 0.0],
        lr: 0.01,
        window: [-5.0, 5.0, -5.0, 5.0],
        minima: &[(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)],
        build: |e, v| {
            let x2 = e.sq(v[0])?;
            let a = e.add(x2, v[1])?;
            let a = e.add_scalar(a, -11.0)?;
            let a = e.sq(a)?;
            let y2 = e.sq(v[1])?;
            let b = e.add(v[0], y2)?;
            let b = e.add_scalar(b, -7.0)?;
            let b = e.sq(b)?;
            e.add(a, b)
        },
    },
    Function {
        name: "saddle",
        formula: "x^2 - y^2",
        dims: 2,
        start: [-2.0, 0.01],
        lr: 0.1,
        window: [-2.5, 2.5, -2.5, 2.5],
        minima: &[],
        build: |e, v| {
            let a = e.sq(v[0])?;
            let b = e.sq(v[1])?;
            e.sub(a, b)
        },
    },
    Function {
        name: "elongated",
        formula: "x^2 + 10y^2",
        dims: 2,
        start: [-8.0, 2.0],
        lr: 0.09,
        window: [-10.0, 10.0, -4.0, 4.0],
        minima: &[(0.0, 0.0)],
        build: |e, v| {
            let a = e.sq(v[0])?;
            let b = e.sq(v[1])?;
            let b = e.scale(b, 10.0)?;
            e.add(a, b)
        },
    },
];

impl Function {
    pub fn find(name: &str) -> Result<Function> {
        match FUNCTIONS.iter().find(|f| f.name == name) {
            Some(f) => Ok(*f),
            None => {
                let names: Vec<_> = FUNCTIONS.iter().map(|f| f.name).collect();
                bail!(said![
                    format!("unknown function '{name}': use one of {} (", names.join(", ")),
                    Setting::FunctionList,
                    ")"
                ])
            }
        }
    }

    /// Record the function of `vars` (one per variable, all of one shape) on the tape.
    pub fn build(&self, tape: &mut Tape, vars: &[Var]) -> Result<Var> {
        ensure!(vars.len() == self.dims, "{} takes {} variables, got {}", self.name, self.dims, vars.len());
        (self.build)(&mut Expr { tape }, vars)
    }

    /// The function at many points at once: `coords[d][i]` is variable d of point i.
    pub fn eval_many(&self, dev: &mut Device, coords: &[Vec<f32>]) -> Result<Vec<f32>> {
        let mut tape = Tape::new(dev);
        let mut vars = Vec::new();
        for c in coords {
            vars.push(tape.constant(c, &[c.len()])?);
        }
        let f = self.build(&mut tape, &vars)?;
        tape.read(f)
    }
}

/// Tape ops with the device at hand, so formulas read like formulas.
pub struct Expr<'a, 'd> {
    tape: &'a mut Tape<'d>,
}

impl Expr<'_, '_> {
    fn sq(&mut self, a: Var) -> Result<Var> {
        self.tape.mul(a, a)
    }
    fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.tape.mul(a, b)
    }
    fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.tape.add(a, b)
    }
    fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        self.tape.sub(a, b)
    }
    fn scale(&mut self, a: Var, s: f32) -> Result<Var> {
        self.tape.scale(a, s)
    }
    fn add_scalar(&mut self, a: Var, s: f32) -> Result<Var> {
        self.tape.add_scalar(a, s)
    }
    fn unary(&mut self, op: UnaryOp, a: Var) -> Result<Var> {
        self.tape.unary(op, a)
    }
}
