# Replays the committed fuzz corpus on every ctest run: each tests/fuzz/fuzz_*.c
# target is linked with the standalone driver (tests/fuzz/replay.c) instead of
# libFuzzer, so this works with gcc and in the sanitizer build alike.
file(GLOB CS_FUZZ_REPLAY_TARGETS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(src ${CS_FUZZ_REPLAY_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(replay_${name} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay.c ${src})
  target_compile_options(replay_${name} PRIVATE ${CS_WARNINGS})
  target_link_libraries(replay_${name} PRIVATE cosmicsync_internal)
  add_test(NAME replay_${name}
    COMMAND replay_${name} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(replay_${name} PROPERTIES TIMEOUT 300)
endforeach()

# Writes the seed corpus (small valid encodings and edge cases); run by hand
# after a format change: codec_corpus_gen tests/fuzz/corpus
add_executable(codec_corpus_gen ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus_gen.c)
target_compile_options(codec_corpus_gen PRIVATE ${CS_WARNINGS})
target_link_libraries(codec_corpus_gen PRIVATE cosmicsync_internal)
