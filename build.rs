// The default build is pure Rust. With the `cuda` feature this compiles csrc/ with nvcc
// (through the `cc` crate), links the CUDA runtime statically and generates the Rust side
// of csrc/rosa_kernels.h with bindgen. Every build (no nvcc needed) names the kernel
// sources with a hash, ROSA_BUILD_ID, and embeds the shipped tuning caches.
use std::path::{Path, PathBuf};

#[path = "src/tune/build_id.rs"]
mod build_id;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/tune/build_id.rs");
    export_build_id();
    embed_shipped_caches();
    #[cfg(feature = "cuda")]
    cuda::build();
    #[cfg(feature = "cuda-emu")]
    emu::build();
}

/// The regular files directly in `dir`, sorted by name; none when `dir` is missing.
fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A tuning cache numbers configurations by their place in csrc/tiles.cuh and was timed
/// on these kernels, so any change under csrc/ must make old caches foreign.
fn export_build_id() {
    println!("cargo:rerun-if-changed=csrc");
    let files: Vec<(String, Vec<u8>)> = files_in("csrc")
        .into_iter()
        .map(|p| {
            let body =
                std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (file_name(&p), body)
        })
        .collect();
    let id = build_id::hash_sources(files.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    println!("cargo:rustc-env=ROSA_BUILD_ID={id:016x}");
}

/// tuning/*.json compiled in, so a binary carried to a GPU machine without the repository
/// still finds the caches shipped for it.
fn embed_shipped_caches() {
    println!("cargo:rerun-if-changed=tuning");
    let mut list = String::from("&[\n");
    for p in files_in("tuning") {
        if p.extension().is_some_and(|x| x == "json") {
            let abs = p
                .canonicalize()
                .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", p.display()));
            list += &format!(
                "    ({:?}, include_str!({:?})),\n",
                file_name(&p),
                abs.to_string_lossy()
            );
        }
    }
    list += "]\n";
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("shipped_tuning.rs");
    std::fs::write(&out, list).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod cuda {
    use std::env;
    #[cfg(feature = "cuda")]
    use std::path::Path;
    use std::path::PathBuf;
    #[cfg(feature = "cuda")]
    use std::process::Command;

    const SETUP: &str = "run `eval \"$(scripts/setup-cuda.sh)\"` first: it installs the pinned \
                         CUDA 13.0 toolchain and libclang and prints CUDA_HOME, NVCC, \
                         LIBCLANG_PATH and PATH";

    // Device code: sm_80 and sm_90 machine code, plus compute_90 PTX for newer GPUs.
    #[cfg(feature = "cuda")]
    const GENCODE: [&str; 3] = [
        "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_90,code=sm_90",
        "-gencode=arch=compute_90,code=compute_90",
    ];

    #[cfg(feature = "cuda")]
    pub fn build() {
        for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "LIBCLANG_PATH", "PATH"] {
            println!("cargo:rerun-if-env-changed={var}");
        }

        let nvcc = find_nvcc();
        let cuda_home = cuda_home(&nvcc);
        compile_kernels(&nvcc);
        link_cudart(&cuda_home);
        generate_bindings();
    }

    #[cfg(feature = "cuda")]
    fn works(nvcc: &Path) -> bool {
        Command::new(nvcc)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    #[cfg(feature = "cuda")]
    fn find_nvcc() -> PathBuf {
        let candidates = env::var_os("NVCC")
            .map(PathBuf::from)
            .into_iter()
            .chain(
                ["CUDA_HOME", "CUDA_PATH"]
                    .iter()
                    .filter_map(env::var_os)
                    .map(|h| PathBuf::from(h).join("bin").join("nvcc")),
            )
            .chain(std::iter::once(PathBuf::from("nvcc")));
        for nvcc in candidates {
            if works(&nvcc) {
                return nvcc;
            }
        }
        panic!("the `cuda` feature needs nvcc (CUDA 13.0), found none via NVCC, CUDA_HOME or PATH; {SETUP}");
    }

    #[cfg(feature = "cuda")]
    fn cuda_home(nvcc: &Path) -> PathBuf {
        if let Some(home) = env::var_os("CUDA_HOME").or_else(|| env::var_os("CUDA_PATH")) {
            return PathBuf::from(home);
        }
        // Resolve a bare `nvcc` through PATH so that <home>/bin/nvcc gives <home>.
        let resolved = if nvcc.components().count() > 1 {
            Some(nvcc.to_path_buf())
        } else {
            env::var_os("PATH").and_then(|paths| {
                env::split_paths(&paths)
                    .map(|d| d.join("nvcc"))
                    .find(|p| p.is_file())
            })
        };
        resolved
            .and_then(|p| p.canonicalize().ok())
            .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| panic!("cannot tell CUDA_HOME from {}; {SETUP}", nvcc.display()))
    }

    #[cfg(feature = "cuda")]
    fn compile_kernels(nvcc: &Path) {
        let sources: Vec<PathBuf> = std::fs::read_dir("csrc")
            .expect("csrc/ is missing")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cu"))
            .collect();
        // cc treats a `.compiler(nvcc)` as a host compiler and passes it gcc flags; it
        // drives nvcc properly only when it finds it through the NVCC variable itself.
        env::set_var("NVCC", nvcc);
        let mut build = cc::Build::new();
        build
            .cuda(true)
            // cc would link cudart too (`cuda(true)` defaults to static): link_cudart is
            // the one place that does, with the search path of the wheels' layout.
            .cudart("none")
            // Release device code in every profile: `-G` would make the tests measure and
            // sanitize a different program from the one that ships.
            .debug(false)
            .opt_level(3)
            .flag("-std=c++17")
            .flag("-lineinfo")
            .flag("-Xptxas=-warn-spills")
            .include("csrc")
            .files(&sources);
        for g in GENCODE {
            build.flag(g);
        }
        build.compile("rosa_kernels");
    }

    #[cfg(feature = "cuda")]
    fn link_cudart(cuda_home: &Path) {
        // The pip wheels put libraries in lib/, a system toolkit in lib64/.
        for dir in ["lib", "lib64", "lib/x64"] {
            let d = cuda_home.join(dir);
            if d.join("libcudart_static.a").is_file() {
                println!("cargo:rustc-link-search=native={}", d.display());
            }
        }
        println!("cargo:rustc-link-lib=static=cudart_static");
        for lib in ["rt", "dl", "pthread", "stdc++"] {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }

    pub fn generate_bindings() {
        let header = "csrc/rosa_kernels.h";
        // bindgen panics (not errs) when it cannot load libclang: turn that into a message
        // that says how to get one.
        let generated = std::panic::catch_unwind(|| {
            bindgen::Builder::default()
                .header(header)
                .allowlist_function("rosa_.*")
                .allowlist_type("rosa_.*")
                .allowlist_var("ROSA_.*")
                .constified_enum_module("rosa_.*")
                .derive_default(true)
                .derive_debug(true)
                .layout_tests(true)
                .generate()
        });
        let bindings = match generated {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => panic!("bindgen failed on {header}: {e}; {SETUP}"),
            Err(_) => panic!(
                "bindgen could not load libclang (LIBCLANG_PATH = {:?}); {SETUP}",
                env::var("LIBCLANG_PATH").ok()
            ),
        };
        let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("rosa_kernels.rs");
        bindings
            .write_to_file(&out)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    }
}

/// `cuda-emu`: csrc/*.cu compiled by the host C++ compiler. The one thing no host compiler
/// parses, `k<<<grid, block, shared, stream>>>(args)`, is rewritten into OUT_DIR as
/// `k % ::emu::Launch(::emu::Config(grid, block, shared, stream), args)`, keeping every
/// newline and starting with `#line 1 "csrc/x.cu"`, so each diagnostic and each emulator
/// abort names the real csrc/ line. Rewriting here, rather than a launch macro in csrc/,
/// leaves the nvcc build's source exactly as it is.
#[cfg(feature = "cuda-emu")]
mod emu {
    use std::env;
    use std::path::{Path, PathBuf};

    const SETUP: &str = "run `eval \"$(scripts/setup-cuda-headers.sh)\"` first: it installs \
                         the CUDA 13.0 headers and libclang and prints CUDA_HOME and LIBCLANG_PATH";

    pub fn build() {
        for var in [
            "CUDA_HOME",
            "LIBCLANG_PATH",
            "ROSA_EMU_SANITIZE",
            "ROSA_CSRC_DIR",
        ] {
            println!("cargo:rerun-if-env-changed={var}");
        }
        // ROSA_CSRC_DIR: another copy of csrc/ to emulate instead (scripts/emu-mutants.sh
        // builds the suite against copies with planted bugs). The bindings still come from
        // the real csrc/rosa_kernels.h: a mutant changes kernels, never the ABI.
        let csrc = env::var("ROSA_CSRC_DIR").unwrap_or_else(|_| "csrc".to_string());
        println!("cargo:rerun-if-changed={csrc}");
        let home = PathBuf::from(
            env::var_os("CUDA_HOME").unwrap_or_else(|| panic!("cuda-emu needs CUDA_HOME; {SETUP}")),
        );
        let include = home.join("include");
        if !include.join("cuda_fp16.h").is_file() || !include.join("cccl/nv/target").is_file() {
            panic!(
                "no cuda_fp16.h or cccl/nv/target under {}; {SETUP}",
                include.display()
            );
        }
        let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("emu");
        std::fs::create_dir_all(&out).expect("cannot create OUT_DIR/emu");
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .std("c++20")
            .opt_level(2)
            // `#pragma unroll` is nvcc's; g++ warns about each one.
            .flag("-Wno-unknown-pragmas")
            // The kernels read a uint4's bytes as T (common.cuh, load_vec/unpack_shifted),
            // which nvcc's device code allows and host C++ calls an aliasing violation:
            // at -O2 g++ reorders those reads and SDDMM/SpMM return garbage.
            .flag("-fno-strict-aliasing")
            // Elementwise grids capped at 4 blocks: n > 1024 already takes a second
            // grid-stride pass (tests/emu_kernels.rs relies on it).
            .define("ROSA_MAX_BLOCKS", "4")
            .flag("-include")
            .flag(format!("{csrc}/emu/cuda_emu.h"))
            .include(&csrc)
            .include(&include)
            .include(include.join("cccl"))
            .file(format!("{csrc}/emu/emu_runtime.cpp"));
        // csrc/emu/tests/*.cu: kernels that test the emulator itself (tests/emu_semantics.rs),
        // built only here, never by nvcc.
        let tests = super::files_in(&format!("{csrc}/emu/tests"));
        for src in super::files_in(&csrc).into_iter().chain(tests) {
            if src.extension().is_some_and(|x| x == "cu") {
                let text = std::fs::read_to_string(&src)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
                let dst = out.join(format!(
                    "{}{}.cpp",
                    if src.parent().is_some_and(|d| d.ends_with("tests")) {
                        "test_"
                    } else {
                        ""
                    },
                    super::file_name(&src)
                ));
                std::fs::write(&dst, rewrite(&src, &text))
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", dst.display()));
                build.file(dst);
            }
        }
        // scripts/emu-check.sh: ROSA_EMU_SANITIZE=address,undefined or thread instruments
        // the C++ (kernels and emulator) and links the gcc sanitizer runtimes, which the
        // script preloads, so the Rust side needs no nightly -Zsanitizer.
        if let Ok(list) = env::var("ROSA_EMU_SANITIZE") {
            build
                .flag(format!("-fsanitize={list}"))
                .flag("-fno-sanitize-recover=all")
                .flag("-fno-omit-frame-pointer")
                .debug(true);
            for (name, lib) in [
                ("address", "asan"),
                ("undefined", "ubsan"),
                ("thread", "tsan"),
            ] {
                if list.split(',').any(|s| s == name) {
                    println!("cargo:rustc-link-lib=dylib={lib}");
                }
            }
        }
        build.compile("rosa_kernels_emu");
        println!("cargo:rustc-link-lib=dylib=stdc++");
        println!("cargo:rustc-link-lib=dylib=pthread");
        super::cuda::generate_bindings();
    }

    /// The source with each launch rewritten (see the module doc); newlines are kept.
    pub fn rewrite(path: &Path, text: &str) -> String {
        let mut out = format!("#line 1 \"{}\"\n", path.display());
        let mut rest = text;
        while let Some(open) = rest.find("<<<") {
            let close = open
                + rest[open..]
                    .find(">>>")
                    .unwrap_or_else(|| panic!("{}: `<<<` without `>>>`", path.display()));
            let paren = close
                + rest[close..]
                    .find('(')
                    .unwrap_or_else(|| panic!("{}: launch without arguments", path.display()));
            let mut depth = 0usize;
            let mut end = paren;
            for (i, ch) in rest[paren..].char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = paren + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let args = &rest[paren + 1..end];
            out += &rest[..open];
            out += " % ::emu::Launch(::emu::Config(";
            out += &rest[open + 3..close];
            out += ")";
            out += &rest[close + 3..paren]; // whitespace and newlines between `>>>` and `(`
            if !args.trim().is_empty() {
                out += ", ";
            }
            out += args;
            out += ")";
            rest = &rest[end + 1..];
        }
        out += rest;
        out
    }
}
