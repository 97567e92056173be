//! A oneshot channel for a reply to one waiting task. The sender may be on another thread, but
//! Shoal completes it on the waiter's own shard (cross-shard replies arrive as mesh messages
//! first), because glommio's foreign-thread waker path races with task destruction.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct OneshotState<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

pub struct OneshotSender<T>(Arc<Mutex<OneshotState<T>>>);
pub struct OneshotReceiver<T>(Arc<Mutex<OneshotState<T>>>);

/// The sender was dropped without sending (the other shard failed or shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canceled;

pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let state = Arc::new(Mutex::new(OneshotState {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (OneshotSender(state.clone()), OneshotReceiver(state))
}

impl<T> OneshotSender<T> {
    pub fn send(self, value: T) {
        let waker = {
            let mut state = self.0.lock().expect("oneshot poisoned");
            state.value = Some(value);
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock().expect("oneshot poisoned");
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Result<T, Canceled>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.0.lock().expect("oneshot poisoned");
        if let Some(v) = state.value.take() {
            return Poll::Ready(Ok(v));
        }
        if state.sender_gone {
            return Poll::Ready(Err(Canceled));
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneshot_across_threads() {
        let (tx, rx) = oneshot::<u32>();
        let t = std::thread::spawn(move || tx.send(7));
        assert_eq!(futures_lite::future::block_on(rx), Ok(7));
        t.join().unwrap();
        let (tx, rx) = oneshot::<u32>();
        drop(tx);
        assert_eq!(futures_lite::future::block_on(rx), Err(Canceled));
    }
}
