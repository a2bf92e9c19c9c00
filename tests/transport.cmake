# The replay-cache property test once more with a fixed seed, so that a
# failure seen in CI can be replayed exactly (the suite run uses the time).
if(TARGET test_transport)
  add_test(NAME transport_replay_fixed_seed
    COMMAND test_transport --filter "transport_replay/never_accepts_a_nonce_twice_property")
  set_tests_properties(transport_replay_fixed_seed PROPERTIES ENVIRONMENT "CS_SEED=20261125" TIMEOUT 120
    FAIL_REGULAR_EXPRESSION "Tested: 0 ")
endif()
