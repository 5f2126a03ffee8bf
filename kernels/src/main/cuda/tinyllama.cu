// The one translation unit nvcc compiles into tinyllama.fatbin: every kernel family, each in its
// own file (forward beside backward) that also compiles on its own (check-standalone.sh). One
// unit keeps the build to a single nvcc call and the kernels in one module.
#include "elementwise.cu"
#include "embedding.cu"
#include "rmsnorm.cu"
#include "rope.cu"
#include "swiglu.cu"
#include "attention.cu"
#include "attention_mma_sm80.cu"
#include "attention_wgmma_sm90.cu"
#include "cross_entropy.cu"
#include "adamw.cu"
#include "global_norm.cu"
#include "fp8.cu"
