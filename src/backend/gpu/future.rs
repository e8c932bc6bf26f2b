//! Waiting on the GPU: wgpu callbacks as futures (polled natively, woken by the browser's event
//! loop), the error log the device's sinks fill, and mapped readbacks.

use crate::backend::pending::Pending;
use crate::message::{Message, Setting};
use crate::said;
use anyhow::{anyhow, bail, Result};
use std::sync::{Arc, Mutex};

/// How a lost device's message begins.
pub(super) const LOST: &str = "the GPU device was lost";

/// wgpu's whole diagnostic: its `Display` says only "Validation Error"; the description (or
/// the chain of sources) says what was wrong.
pub(super) fn describe_error(e: &wgpu::Error) -> String {
    match e {
        wgpu::Error::Validation { description, .. } => description.trim().to_string(),
        other => {
            let mut msg = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            msg
        }
    }
}

/// A future completed by a wgpu callback (a buffer mapped, submitted work done). Natively,
/// polling it waits on the device, which runs the callback; in the browser the event loop runs
/// it and wakes the future.
pub(super) struct Callback<T> {
    slot: Arc<Mutex<(Option<T>, Option<std::task::Waker>)>>,
    device: wgpu::Device,
}

/// The future, and the callback to hand wgpu.
pub(super) fn callback<T: Send + 'static>(device: &wgpu::Device) -> (Callback<T>, impl FnOnce(T) + Send + 'static) {
    let slot = Arc::new(Mutex::new((None, None::<std::task::Waker>)));
    let fire = {
        let slot = slot.clone();
        move |v: T| {
            if let Ok(mut s) = slot.lock() {
                s.0 = Some(v);
                if let Some(w) = s.1.take() {
                    w.wake();
                }
            }
        }
    };
    (Callback { slot, device: device.clone() }, fire)
}

impl<T> std::future::Future for Callback<T> {
    type Output = Result<T>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<T>> {
        use std::task::Poll;
        let take = |waker: Option<&std::task::Waker>| -> Result<Option<T>> {
            let mut s = self.slot.lock().map_err(|_| anyhow!("GPU callback state poisoned"))?;
            if s.0.is_none() {
                s.1 = waker.cloned();
            }
            Ok(s.0.take())
        };
        match take(Some(cx.waker())) {
            Ok(Some(v)) => return Poll::Ready(Ok(v)),
            Err(e) => return Poll::Ready(Err(e)),
            Ok(None) => {}
        }
        if cfg!(target_arch = "wasm32") {
            return Poll::Pending;
        }
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            return Poll::Ready(Err(anyhow!("GPU poll failed: {e}")));
        }
        match take(None) {
            Ok(Some(v)) => Poll::Ready(Ok(v)),
            Ok(None) => Poll::Ready(Err(anyhow!("the GPU finished its work without running the callback"))),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Errors wgpu reported since the last check, as one error.
/// A lost device is reported as such: the invalid-buffer errors it causes are consequences.
pub(super) fn check_errors(device: &wgpu::Device, errors: &Mutex<Vec<Message>>) -> Result<()> {
    if errors.lock().map_err(|_| anyhow!("GPU error log poisoned"))?.is_empty() {
        return Ok(());
    }
    // wgpu reports a loss from its next poll; give it that poll so the cause comes first.
    let _ = device.poll(wgpu::PollType::Poll);
    let mut v = errors.lock().map_err(|_| anyhow!("GPU error log poisoned"))?;
    let msg = match v.iter().find(|m| m.to_string().starts_with(LOST)) {
        Some(lost) => lost.clone().then(said![
            " (the driver was reset, the GPU removed, or it ran out of memory); rerun, or use ",
            Setting::DeviceCpu
        ]),
        None => {
            let mut all = Message::from("GPU error: ");
            for (i, m) in v.iter().enumerate() {
                all = all.then(if i > 0 { "; " } else { "" }).then(m.clone());
            }
            all.then(said!["\n(", Setting::DeviceCpu, " runs the same work on the CPU backend)"])
        }
    };
    v.clear();
    bail!(msg)
}

/// Map a MAP_READ buffer (its copy already submitted), await the map, and read it with `f`;
/// then any error the device reported. If the map fails, the device's own error (a lost
/// device, a validation failure) says more than the failed map it caused.
pub(super) fn map_and_read<T: 'static>(
    device: &wgpu::Device,
    errors: &Arc<Mutex<Vec<Message>>>,
    buf: wgpu::Buffer,
    what: &'static str,
    f: impl FnOnce(&[u8]) -> T + 'static,
) -> Pending<T> {
    let (mapped, fire) = callback(device);
    buf.slice(..).map_async(wgpu::MapMode::Read, fire);
    let (device, errors) = (device.clone(), errors.clone());
    Pending::new(async move {
        let read = async {
            mapped.await?.map_err(|e| anyhow!("GPU {what} failed: {e}"))?;
            let out = {
                let view =
                    buf.slice(..).get_mapped_range().map_err(|e| anyhow!("GPU {what} could not be mapped: {e}"))?;
                f(&view)
            };
            buf.unmap();
            Ok(out)
        };
        let out = read.await.map_err(|e| check_errors(&device, &errors).err().unwrap_or(e))?;
        check_errors(&device, &errors)?;
        Ok(out)
    })
}
