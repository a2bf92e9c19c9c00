# Command-line tests: tests/cli/cli_test.sh drives the built `cosmicsync`
# binary, one ctest entry per section so that a failure names its area; the
# guided demo runs as a test of its own (it exits 0 only when the replicas agree).
if(TARGET cosmicsync_cli)
  foreach(section basics data conflicts local-sync serve bench)
    add_test(NAME cli_${section}
      COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/cli/cli_test.sh $<TARGET_FILE:cosmicsync_cli> ${section})
    set_tests_properties(cli_${section} PROPERTIES TIMEOUT 300)
  endforeach()
  add_test(NAME cli_demo COMMAND $<TARGET_FILE:cosmicsync_cli> demo)
  set_tests_properties(cli_demo PROPERTIES TIMEOUT 120
    FAIL_REGULAR_EXPRESSION "FAILED")
endif()
