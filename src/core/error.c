/* Helpers shared by the layers' source files (nn_*.c). */
#include "core.h"

#include <stdio.h>

ad_status ad__error_message(char *err, size_t err_size, ad_status code, const char *format, ...)
{
    if (err && err_size) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(err, err_size, format, ap);
        va_end(ap);
    }
    return code;
}
