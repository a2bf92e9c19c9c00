# Smoke run of the side-by-side benchmark (tiny workloads, one repetition, no docs):
# keeps bench/compare and bench/peers from rotting. Skips (exit 77) when Node is
# missing, or when the Node engines are not installed and npm cannot install them.
if(CS_BUILD_BENCH)
  add_test(NAME bench_compare_smoke
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_smoke.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  set_tests_properties(bench_compare_smoke PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
    RUN_SERIAL TRUE)
endif()
