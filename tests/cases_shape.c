/* Gradient-check cases for the shape family (being written). */
#include "grad_cases.h"

const grad_case cases_shape[1];
const size_t n_cases_shape = 0;
