//! The kernel build id's hash. This file is also compiled into build.rs (by path), so the
//! hash that names a build and the one the tests check are the same code; it must stay
//! free of crate imports.

/// FNV-1a (64-bit) over source files given as (name, contents), taken in name order so
/// that directory listing order does not matter. Each name and body is prefixed with its
/// length, so moving bytes from one file (or name) to the next still changes the hash.
///
/// ```
/// use rosa::tune::hash_sources;
/// let a = hash_sources([("a.cu", &b"x"[..]), ("b.cuh", &b"y"[..])]);
/// assert_eq!(a, hash_sources([("b.cuh", &b"y"[..]), ("a.cu", &b"x"[..])]));
/// assert_ne!(a, hash_sources([("a.cu", &b"x"[..]), ("b.cuh", &b"z"[..])]));
/// ```
pub fn hash_sources<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = |h: u64, bytes: &[u8]| {
        bytes
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
    };
    let mut files: Vec<(&str, &[u8])> = files.into_iter().collect();
    files.sort_unstable();
    files.iter().fold(OFFSET, |h, (name, body)| {
        [name.as_bytes(), body].iter().fold(h, |h, part| {
            fnv(fnv(h, &(part.len() as u64).to_le_bytes()), part)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::hash_sources;

    fn h(files: &[(&str, &str)]) -> u64 {
        hash_sources(files.iter().map(|(n, b)| (*n, b.as_bytes())))
    }

    #[test]
    fn the_hash_is_pinned_and_independent_of_listing_order() {
        // Pinned: a change to the function must be deliberate, since it re-keys every cache.
        assert_eq!(h(&[]), 0xcbf2_9ce4_8422_2325);
        let files = [
            ("kernels.cu", "__global__ void k() {}"),
            ("tiles.cuh", "{4, 32, 1}"),
        ];
        let a = h(&files);
        assert_eq!(a, h(&[files[1], files[0]]));
        assert_eq!(a, h(&files), "the same input hashes the same");
    }

    #[test]
    fn any_change_to_a_name_or_a_body_changes_the_hash() {
        let base = h(&[("a.cu", "xy"), ("b.cuh", "z")]);
        let changed = [
            h(&[("a.cu", "xy"), ("b.cuh", "Z")]),            // a body
            h(&[("a.cu", "xy"), ("c.cuh", "z")]),            // a name
            h(&[("a.cu", "x"), ("b.cuh", "yz")]),            // bytes moved between files
            h(&[("a.cux", "y"), ("b.cuh", "z")]),            // between a name and its body
            h(&[("a.cu", "xy"), ("b.cuh", "z"), ("c", "")]), // an empty file added
            h(&[("a.cu", "xy")]),                            // a file removed
        ];
        for (i, c) in changed.iter().enumerate() {
            assert_ne!(*c, base, "change {i}");
        }
    }
}
