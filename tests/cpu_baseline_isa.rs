//! The kernels held to the baseline instruction set (no AVX2/FMA): the build most machines
//! without AVX2 run, checked on any machine. A separate test binary, because the setting
//! is process-wide.

mod common;

use common::kernels::*;
use proptest::prelude::*;
use rosa::{bf16, cpu, f16};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn baseline_kernels_match_the_reference(c in case()) {
        cpu::set_baseline_only(true);
        prop_assert_eq!(cpu::isa(), cpu::Isa::Baseline);
        check_spmm::<f32>(&c);
        check_spmm::<bf16>(&c);
        check_spmm_t::<f32>(&c);
        check_spmm_t::<f16>(&c);
        check_sddmm::<f32>(&c);
        check_sddmm::<bf16>(&c);
    }
}
