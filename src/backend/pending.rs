//! Results the device produces later. A browser cannot block, so every readback and wait is a
//! future ([`Pending`]): there it is awaited; natively [`wait`] blocks on it.

use anyhow::Result;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A result the device produces later: a readback or the end of submitted work. Await it (in
/// the browser, where nothing may block), or [`wait`] for it natively.
#[must_use = "a readback or wait does nothing useful unless awaited"]
pub struct Pending<T>(Pin<Box<dyn Future<Output = Result<T>>>>);

impl<T: 'static> Pending<T> {
    /// A result that is already here (the CPU backend's reads, or an error found up front).
    pub fn ready(r: Result<T>) -> Pending<T> {
        Pending(Box::pin(std::future::ready(r)))
    }

    /// A result that comes when `f` completes.
    pub fn new(f: impl Future<Output = Result<T>> + 'static) -> Pending<T> {
        Pending(Box::pin(f))
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.0.as_mut().poll(cx)
    }
}

/// Block until `f` completes: the native edge of the async readback path (a GPU future polls
/// the device until its callback fires). In the browser a future that is not ready at once
/// would need the event loop, so it is an error there: await it instead.
pub fn wait<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(f)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => anyhow::bail!(
                "in the browser a GPU result cannot be waited for: await it (Device::read_async, Device::finish_async)"
            ),
        }
    }
}
