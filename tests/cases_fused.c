/* Gradient-check cases for the fused family (being written). */
#include "grad_cases.h"

const grad_case cases_fused[1];
const size_t n_cases_fused = 0;
