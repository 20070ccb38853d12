/* Gradient-check cases for the linalg family (being written). */
#include "grad_cases.h"

const grad_case cases_linalg[1];
const size_t n_cases_linalg = 0;
