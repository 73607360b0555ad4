//! NPY files written byte by byte, so that tests can write what NumPy (or a hostile
//! writer) may put in a file but npyz will not: any header text, any format version.

/// An NPY file in format `version` (1: a 16-bit header length, 2: 32-bit) whose header
/// is `dict`, padded with spaces and ended with a newline as NumPy does, then `data`.
pub fn npy_file(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut header = dict.to_string();
    while !(prefix + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// A version 1 file with NumPy's dict: `descr` as written (quotes included), the order,
/// and `shape` as written.
pub fn npy(descr: &[u8], fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': {}, 'fortran_order': {}, 'shape': {shape}, }}",
        String::from_utf8_lossy(descr),
        if fortran { "True" } else { "False" }
    );
    npy_file(1, &dict, data)
}
