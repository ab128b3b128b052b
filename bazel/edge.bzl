"""Project macros: unit tests, integration tests and fuzz targets."""

def edge_unit_test(name, srcs, deps = [], data = [], size = "small", **kwargs):
    """A CUnit test binary; tests/unit/cunit_main.c runs its registered suites."""
    native.cc_test(
        name = name,
        srcs = srcs,
        deps = deps + ["//tests/unit:cunit_main", "//bazel:cunit"],
        data = data,
        size = size,
        **kwargs
    )

def edge_fuzz_target(name, srcs, deps = [], corpus = []):
    """A libFuzzer target (LLVMFuzzerTestOneInput).

    Under --config=fuzz it links libFuzzer (bazel build --config=fuzz
    //tests/fuzz:NAME, then run the binary). In a normal build the same
    code links a small driver that replays the seed corpus, and a test
    target NAME_corpus_test keeps every seed passing in CI.
    """
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps + select({
            "//bazel:fuzz": [],
            "//conditions:default": ["//tests/fuzz:replay_main"],
        }),
        linkopts = select({
            "//bazel:fuzz": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        testonly = True,
    )
    native.sh_test(
        name = name + "_corpus_test",
        srcs = ["//tests/fuzz:run_corpus.sh"],
        args = ["$(location :" + name + ")"] + ["$(locations " + c + ")" for c in corpus],
        data = [":" + name] + corpus,
        size = "small",
    )
