//! Field and property names, each stored once per process and numbered.
//!
//! Both emulators keep millions of `(name, value)` pairs; a pair names its
//! field by a 16-bit number from here rather than by a string of its own.
//! Names come from the schemas (a few hundred), so the table stays small.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// How many distinct names a process can number.
const MAX_NAMES: usize = 1 << 16;

/// Every name once, leaked, numbered in the order first seen. Reading a
/// number's name takes no lock.
struct Names {
    by_name: Mutex<HashMap<&'static str, u16>>,
    by_id: Box<[OnceLock<&'static str>]>,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| Names {
        by_name: Mutex::new(HashMap::new()),
        by_id: (0..MAX_NAMES).map(|_| OnceLock::new()).collect(),
    })
}

/// The number of `name`, given one the first time it is seen. Past
/// [`MAX_NAMES`] names (never: the schemas have a few hundred, and only an
/// admin adding custom fields one by one adds more) every further name
/// shares the last number, which keeps the first of them.
pub fn id(name: &str) -> u16 {
    let names = names();
    // A poisoned lock still holds valid names.
    let mut by_name = names.by_name.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(id) = by_name.get(name) {
        return *id;
    }
    let id = u16::try_from(by_name.len()).unwrap_or(u16::MAX);
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    by_name.insert(leaked, id);
    let _ = names.by_id[usize::from(id)].set(leaked);
    id
}

/// The name numbered `id` (`""` for a number never given).
pub fn name(id: u16) -> &'static str {
    names().by_id.get(usize::from(id)).and_then(|n| n.get().copied()).unwrap_or("")
}

/// `name`, stored once per process.
pub fn intern(name: &str) -> &'static str {
    self::name(id(name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_keeps_its_number() {
        let a = super::id("names_test_a");
        let b = super::id("names_test_b");
        assert_ne!(a, b);
        assert_eq!(super::id("names_test_a"), a);
        assert_eq!(super::name(b), "names_test_b");
        assert!(std::ptr::eq(super::intern("names_test_a"), super::name(a)));
    }
}
