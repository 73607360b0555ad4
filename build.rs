// The default build is pure Rust. The `cuda` feature will compile csrc/ here.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
