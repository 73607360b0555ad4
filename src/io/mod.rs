//! Reading and writing matrices: Matrix Market for sparse, NPY for dense.
