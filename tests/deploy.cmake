# Shared deployments as ctest fixtures: scripts/deploy.sh starts a Sentinel set (a master,
# two replicas, three sentinels) and a Redis Cluster (3 masters, 3 replicas) on private
# loopback ports, once per ctest run, before the first test that needs it, and stops it after
# the last (and whenever ctest itself exits: the deployment's keeper watches it). Each writes
# its ports and URLs to tests/deploy/KIND.env in the build directory; tests/deploy.c and
# tests/cli/deploy_lib.sh read it.
set(RL_DEPLOY_ENV_DIR ${PROJECT_BINARY_DIR}/tests/deploy)
set(RL_DEPLOY_SCRIPT ${PROJECT_SOURCE_DIR}/scripts/deploy.sh)
find_program(RL_DEPLOY_BASH bash REQUIRED)

target_sources(rl_harness PRIVATE ${CMAKE_CURRENT_LIST_DIR}/deploy.c)
target_compile_definitions(rl_harness PRIVATE RT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

foreach(kind sentinel cluster)
  add_test(NAME deploy_${kind}_start
           COMMAND ${RL_DEPLOY_BASH} ${RL_DEPLOY_SCRIPT} ${kind} start --owner parent
                   --env ${RL_DEPLOY_ENV_DIR}/${kind}.env)
  set_tests_properties(deploy_${kind}_start PROPERTIES FIXTURES_SETUP deploy_${kind}
                       TIMEOUT 120 LABELS "deploy;${kind};forks")
  add_test(NAME deploy_${kind}_stop
           COMMAND ${RL_DEPLOY_BASH} ${RL_DEPLOY_SCRIPT} stop ${RL_DEPLOY_ENV_DIR}/${kind}.env)
  set_tests_properties(deploy_${kind}_stop PROPERTIES FIXTURES_CLEANUP deploy_${kind}
                       TIMEOUT 60 LABELS "deploy;${kind};forks")
endforeach()

# rl_deploy_requires(TEST LABEL...): a test labelled "sentinel" or "cluster" uses that
# deployment; the tests of one deployment run one at a time (they fail over, kill nodes and
# move slots).
function(rl_deploy_requires name)
  foreach(kind sentinel cluster)
    if(kind IN_LIST ARGN)
      string(TOUPPER ${kind} KIND)
      set_property(TEST ${name} APPEND PROPERTY FIXTURES_REQUIRED deploy_${kind})
      set_property(TEST ${name} APPEND PROPERTY RESOURCE_LOCK deploy_${kind})
      set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT
                   "REDIS_LOCK_DEPLOY_${KIND}=${RL_DEPLOY_ENV_DIR}/${kind}.env"
                   "REDIS_LOCK_DEPLOY_SCRIPT=${RL_DEPLOY_SCRIPT}")
    endif()
  endforeach()
endfunction()
