# Warning flags for qforge's own targets (never for third-party code).
set(QFORGE_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow -Wcast-qual -Wmissing-declarations)
if(QFORGE_WERROR)
  list(APPEND QFORGE_WARNING_FLAGS -Werror)
endif()

function(qforge_target_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX,C>:${QFORGE_WARNING_FLAGS}>)
endfunction()
