//! Shard-local synchronisation: a FIFO lock, a oneshot reply channel and a wake-all [`Notify`].
//!
//! Architecture invariant: depends on no Shoal crate and knows nothing of Kafka, logs or shards.
//!
//!
//! `FifoLock` is a strictly first-come-first-served async lock: the order in which tasks call
//! `lock()` is the order in which they get it. Kafka's per-connection, per-partition ordering
//! depends on it: glommio's `Semaphore` lets a newcomer barge ahead of an already-woken waiter,
//! which reordered pipelined appends.

mod notify;
mod oneshot;

pub use notify::{Notify, NotifyWait};
pub use oneshot::{oneshot, Canceled, OneshotReceiver, OneshotSender};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct FifoLock {
    next_ticket: Cell<u64>,
    serving: Cell<u64>,
    held: Cell<bool>,
    closed: Cell<bool>,
    waiters: RefCell<BTreeMap<u64, Waker>>,
    abandoned: RefCell<BTreeSet<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockClosed;

impl FifoLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a place in line now; the returned future resolves when it is this caller's turn.
    pub fn lock(&self) -> FifoLockFuture<'_> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        FifoLockFuture {
            lock: self,
            ticket,
            done: false,
        }
    }

    /// Wakes every waiter with `LockClosed`; later `lock()` calls fail too.
    pub fn close(&self) {
        self.closed.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    fn advance(&self) {
        let mut serving = self.serving.get() + 1;
        {
            let mut abandoned = self.abandoned.borrow_mut();
            while abandoned.remove(&serving) {
                serving += 1;
            }
        }
        self.serving.set(serving);
        if let Some(w) = self.waiters.borrow_mut().remove(&serving) {
            w.wake();
        }
    }
}

pub struct FifoLockFuture<'a> {
    lock: &'a FifoLock,
    ticket: u64,
    done: bool,
}

impl<'a> Future for FifoLockFuture<'a> {
    type Output = Result<FifoGuard<'a>, LockClosed>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let lock = self.lock;
        if lock.closed.get() {
            return Poll::Ready(Err(LockClosed));
        }
        if lock.serving.get() == self.ticket && !lock.held.get() {
            lock.held.set(true);
            self.done = true;
            lock.waiters.borrow_mut().remove(&self.ticket);
            return Poll::Ready(Ok(FifoGuard { lock }));
        }
        lock.waiters
            .borrow_mut()
            .insert(self.ticket, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for FifoLockFuture<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Gave up its place before getting the lock.
        let lock = self.lock;
        lock.waiters.borrow_mut().remove(&self.ticket);
        if lock.serving.get() == self.ticket && !lock.held.get() {
            lock.advance();
        } else if self.ticket > lock.serving.get() {
            lock.abandoned.borrow_mut().insert(self.ticket);
        }
    }
}

pub struct FifoGuard<'a> {
    lock: &'a FifoLock,
}

impl Drop for FifoGuard<'_> {
    fn drop(&mut self) {
        debug_assert!(self.lock.held.get());
        self.lock.held.set(false);
        self.lock.advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn waiters_get_the_lock_in_call_order_even_against_newcomers() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .unwrap()
            .run(async {
                let lock = Rc::new(FifoLock::new());
                let order = Rc::new(RefCell::new(Vec::new()));
                let first = lock.lock().await.unwrap();
                let mut tasks = Vec::new();
                for i in 0..50 {
                    let (task_lock, order) = (lock.clone(), order.clone());
                    tasks.push(glommio::spawn_local(async move {
                        let _g = task_lock.lock().await.unwrap();
                        order.borrow_mut().push(i);
                        glommio::yield_if_needed().await;
                    }));
                    if i == 10 {
                        // A dropped waiter must not stall the line.
                        let abandoned = lock.lock();
                        drop(abandoned);
                    }
                }
                glommio::executor().yield_now().await;
                drop(first);
                for t in tasks {
                    t.await;
                }
                assert_eq!(*order.borrow(), (0..50).collect::<Vec<_>>());
            });
    }

    #[test]
    fn close_fails_waiters() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .unwrap()
            .run(async {
                let lock = Rc::new(FifoLock::new());
                let g = lock.lock().await.unwrap();
                let l2 = lock.clone();
                let waiter = glommio::spawn_local(async move { l2.lock().await.map(|_| ()) });
                glommio::executor().yield_now().await;
                lock.close();
                assert_eq!(waiter.await, Err(LockClosed));
                drop(g);
            });
    }
}
