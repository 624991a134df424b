/* The pinned ABI layout (abi_layout_expected.h) checked by the C compiler: a C plugin sees the
 * same offsets as the C++ host. C11 for _Static_assert; qf_plugin_h_c99.c covers C99. */
#include <qforge/qf_plugin.h>
#include <stdalign.h>
#include <stddef.h>

#include "abi_layout_expected.h"

#define QF_CHECK_STRUCT(type, size, align)                           \
  _Static_assert(sizeof(type) == (size), "sizeof(" #type ") moved"); \
  _Static_assert(alignof(type) == (align), "alignof(" #type ") moved");
#define QF_CHECK_MEMBER(type, member, offset, size)                                             \
  _Static_assert(offsetof(type, member) == (offset), "offsetof(" #type ", " #member ") moved"); \
  _Static_assert(sizeof(((type*)0)->member) == (size), "sizeof(" #type "." #member ") changed");
#define QF_CHECK_CONSTANT(expr, value) _Static_assert((expr) == (value), #expr " changed");

QF_ABI_STRUCTS(QF_CHECK_STRUCT)
QF_ABI_MEMBERS(QF_CHECK_MEMBER)
QF_ABI_CONSTANTS(QF_CHECK_CONSTANT)

int main(void) { return 0; }
