# The side-by-side comparison (make bench-compare, docs/benchmarks.md).
# gen_workload and cs_limits need only libc, RocksDB and msgpack-c and are always built.
# The cosmicsync contenders are EXCLUDE_FROM_ALL: they need layers that may not be
# complete yet, and a contender that does not link must never break `make build`.
# The harness builds them on demand and reports one that does not link as unavailable.
set(CS_COMPARE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/compare)

add_executable(gen_workload ${CS_COMPARE_DIR}/gen_workload.c)
target_compile_options(gen_workload PRIVATE ${CS_WARNINGS})
target_link_libraries(gen_workload PRIVATE m)

add_executable(cs_limits ${CS_COMPARE_DIR}/cs_limits.c ${CS_COMPARE_DIR}/opfile.c)
target_compile_options(cs_limits PRIVATE ${CS_WARNINGS})
target_link_libraries(cs_limits PRIVATE PkgConfig::ROCKSDB PkgConfig::MSGPACK)
target_compile_definitions(cs_limits PRIVATE CS_BENCH_ROCKSDB_VERSION="${ROCKSDB_VERSION}")

# In-memory join alone (crdt/), with codec byte counts, and a variant without the codec.
add_executable(cs_mem EXCLUDE_FROM_ALL ${CS_COMPARE_DIR}/cs_mem.c ${CS_COMPARE_DIR}/opfile.c)
target_compile_definitions(cs_mem PRIVATE CS_BENCH_CODEC=1)
add_executable(cs_mem_nocodec EXCLUDE_FROM_ALL ${CS_COMPARE_DIR}/cs_mem.c ${CS_COMPARE_DIR}/opfile.c)
target_compile_definitions(cs_mem_nocodec PRIVATE CS_BENCH_CODEC=0)
# RocksDB-backed store through the public API.
add_executable(cs_store EXCLUDE_FROM_ALL ${CS_COMPARE_DIR}/cs_store.c ${CS_COMPARE_DIR}/opfile.c)
foreach(t cs_mem cs_mem_nocodec cs_store)
  target_compile_options(${t} PRIVATE ${CS_WARNINGS})
  target_link_libraries(${t} PRIVATE cosmicsync_internal)
endforeach()
