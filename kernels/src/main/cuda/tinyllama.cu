// The one translation unit nvcc compiles into tinyllama.fatbin: every kernel family, each in
// its own file (forward beside backward). One unit keeps the build to a single nvcc call.
#include "elementwise.cu"
#include "embedding.cu"
#include "rmsnorm.cu"
#include "rope.cu"
#include "swiglu.cu"
#include "attention.cu"
#include "flash_attention.cu"
#include "flash_attention_bwd3.cu"
#include "flash_attention_fwd3.cu"
#include "cross_entropy.cu"
#include "adamw.cu"
#include "global_norm.cu"
