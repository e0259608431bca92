# droce_library / droce_test / droce_bench: declare every target with its explicit dependencies.
include_guard(GLOBAL)

# droce_library(NAME SRCS ... DEPS ...) -> target droce_NAME, alias droce::NAME.
function(droce_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  if(ARG_SRCS)
    add_library(droce_${name} STATIC ${ARG_SRCS})
    set_target_properties(droce_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_include_directories(droce_${name} PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(droce_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  else()
    add_library(droce_${name} INTERFACE)
    target_include_directories(droce_${name} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(droce_${name} INTERFACE ${ARG_DEPS})
  endif()
  add_library(droce::${name} ALIAS droce_${name})
endfunction()

# droce_test(NAME SRCS ... DEPS ... [ENV k=v ...] [TIMEOUT s] [LABELS ...]
#            [TSAN_FILTER gtest-filter])
# A GoogleTest binary in build/tests/; each TEST is its own ctest entry, and
# GTEST_SKIP() shows up as a skipped test in ctest's summary. TSAN_FILTER: in
# the ThreadSanitizer build (DROCE_TSAN) only the cases it matches become
# ctest entries (the ones with threads; the rest run in build/ and build-asan/).
function(droce_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT;TSAN_FILTER" "SRCS;DEPS;ENV;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock Threads::Threads)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  # The data tests read is tests/data/ of the checkout (tests/common/test_data.h);
  # DROCE_TEST_DATA in the environment of a run overrides it.
  target_compile_definitions(${name} PRIVATE DROCE_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
  set(env DROCE_BUILD_DIR=${PROJECT_BINARY_DIR} ${ARG_ENV})
  # gtest_discover_tests flattens PROPERTIES through a command line and a script:
  # the env list survives as one ENVIRONMENT value only with this much escaping
  # (checked with ctest --show-only=json-v1).
  string(REPLACE ";" "\\\\\\\\\\\\\\\\;" env "${env}")
  # A list of labels needs the same escaping.
  string(REPLACE ";" "\\\\\\\\\\\\\\\\;" labels "${ARG_LABELS}")
  set(filter)
  if(DROCE_TSAN AND ARG_TSAN_FILTER)
    set(filter TEST_FILTER "${ARG_TSAN_FILTER}")
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 60 ${filter}
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} ENVIRONMENT "${env}" LABELS "${labels}")
endfunction()

# droce_bench(NAME SRCS ... DEPS ...) -> build/bench/NAME (Google Benchmark).
function(droce_bench name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark Threads::Threads)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endfunction()
