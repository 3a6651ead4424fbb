// Explicit instantiation of the fused CEMA scan for double activations (double state and coefficients).
#include "core/cuda/cema/cema_scan.cuh"

namespace mgl::cuda {
template void cema_scan_forward<double, double>(const double*, const double*, const double*, const double*, const double*, const double*, double*,
                                          double*, double*, int64_t, int64_t, int64_t, int64_t, bool, void*);
template void cema_scan_backward<double, double>(const double*, const double*, const double*, const double*, const double*, const double*,
                                           const double*, const double*, double*, double*, double*, double*, double*, double*, int64_t, int64_t,
                                           int64_t, int64_t, bool, void*);
}  // namespace mgl::cuda
