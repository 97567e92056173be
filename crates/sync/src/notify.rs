//! Wake-all notification for the tasks of one executor: a waiter remembers the generation it
//! saw and completes once it changes, so a waiter created before a notification always sees it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Completes once a notification arrives after generation `seen`.
    pub fn wait(&self, seen: u64) -> NotifyWait<'_> {
        NotifyWait { notify: self, seen }
    }

    /// Completes at the next notification from now.
    pub fn notified(&self) -> NotifyWait<'_> {
        self.wait(self.generation())
    }
}

pub struct NotifyWait<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Future for NotifyWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_waiter_created_before() {
        let n = Notify::default();
        let mut fut = Box::pin(n.notified());
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(n.wakers.borrow().len(), 1, "a waker is registered once");
        n.notify_all();
        assert!(fut.as_mut().poll(&mut cx).is_ready());
    }
}
