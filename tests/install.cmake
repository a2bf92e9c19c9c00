# Skipped in sanitizer builds: a plain compiler cannot link the instrumented library.
if(NOT CS_SANITIZE)
# `cmake --install` into a temporary prefix, then build and run a program with
# pkg-config --cflags --libs cosmicsync, as an application would.
add_test(NAME install_pkgconfig
  COMMAND ${CMAKE_COMMAND} -E env CC=${CMAKE_C_COMPILER}
    sh ${CMAKE_CURRENT_SOURCE_DIR}/install_test.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(install_pkgconfig PROPERTIES TIMEOUT 300)
endif()
