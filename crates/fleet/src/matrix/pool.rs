//! A bounded pool of scoped threads mapping a slice, results in input order.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `work` over every item on at most `workers` threads; the result of item `i` is at index
/// `i` whatever the completion order. A panicking `work` yields `on_panic(item, message)`
/// instead of taking the other items down. `progress(done, total)` runs after each item.
pub(crate) fn pool_map<T, R, W, P>(
    items: &[T],
    workers: usize,
    work: W,
    on_panic: P,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<R>
where
    T: Sync,
    R: Send,
    W: Fn(&T) -> R + Sync,
    P: Fn(&T, String) -> R + Sync,
{
    let total = items.len();
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..total).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let run_one = |index: usize| {
        let item = &items[index];
        let result = catch_unwind(AssertUnwindSafe(|| work(item)))
            .unwrap_or_else(|payload| on_panic(item, panic_message(payload.as_ref())));
        if let Ok(mut slots) = results.lock() {
            slots[index] = Some(result);
        }
        progress(done.fetch_add(1, Ordering::SeqCst) + 1, total);
    };
    let threads = workers.clamp(1, total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= total {
                    break;
                }
                run_one(index);
            });
        }
    });
    let slots = match results.into_inner() {
        Ok(slots) => slots,
        Err(poisoned) => poisoned.into_inner(),
    };
    slots
        .into_iter()
        .zip(items)
        .map(|(slot, item)| {
            slot.unwrap_or_else(|| on_panic(item, "the worker stopped before this item".into()))
        })
        .collect()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn results_keep_input_order_and_the_pool_is_bounded() {
        let items: Vec<u64> = (0..40).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let reported = AtomicUsize::new(0);
        let out = pool_map(
            &items,
            4,
            |item| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Later items finish first.
                std::thread::sleep(Duration::from_millis(40 - item));
                running.fetch_sub(1, Ordering::SeqCst);
                item * 2
            },
            |_, _| u64::MAX,
            &|done, total| {
                assert!(done <= total);
                reported.fetch_add(1, Ordering::SeqCst);
            },
        );
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        assert_eq!(reported.load(Ordering::SeqCst), 40);
    }

    #[test]
    fn a_panic_is_one_result_not_a_crash() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let out = pool_map(
            &[1, 2, 3],
            2,
            |item| {
                if *item == 2 {
                    panic!("boom on {item}");
                }
                format!("ok {item}")
            },
            |item, message| format!("panicked {item}: {message}"),
            &|_, _| {},
        );
        std::panic::set_hook(previous);
        assert_eq!(out, ["ok 1", "panicked 2: boom on 2", "ok 3"]);
        assert!(pool_map(&[] as &[u8], 3, |_| 1, |_, _| 0, &|_, _| {}).is_empty());
    }
}
