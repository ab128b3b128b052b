"""protoc_c_library: generates protobuf-c code at build time.

Generated files are build outputs only (never committed). Protos are
compiled with the package directory as the import root, so a proto in
proto/edge/v1/config.proto is imported as "edge/v1/config.proto" and its
header included as "edge/v1/config.pb-c.h".
"""

def _protoc_c_gen_impl(ctx):
    outs = []
    pkg = ctx.label.package
    for src in ctx.files.srcs:
        rel = src.short_path[len(pkg) + 1:] if pkg else src.short_path
        base = rel[:-len(".proto")]
        outs.append(ctx.actions.declare_file(base + ".pb-c.c"))
        outs.append(ctx.actions.declare_file(base + ".pb-c.h"))
    root = ctx.bin_dir.path + ("/" + pkg if pkg else "")
    src_root = pkg if pkg else "."
    args = ["--c_out=" + root, "-I" + src_root] + [s.path for s in ctx.files.srcs]
    ctx.actions.run_shell(
        inputs = ctx.files.srcs,
        outputs = outs,
        command = "protoc-c \"$@\"",
        arguments = args,
        mnemonic = "ProtocC",
        progress_message = "protoc-c %s" % ctx.label,
        use_default_shell_env = True,
    )
    return [
        DefaultInfo(files = depset(outs)),
        OutputGroupInfo(
            c = depset([f for f in outs if f.path.endswith(".c")]),
            h = depset([f for f in outs if f.path.endswith(".h")]),
        ),
    ]

_protoc_c_gen = rule(
    implementation = _protoc_c_gen_impl,
    attrs = {"srcs": attr.label_list(allow_files = [".proto"])},
)

def protoc_c_library(name, srcs, deps = [], visibility = None):
    """A cc_library of the protobuf-c code generated from srcs."""
    _protoc_c_gen(name = name + "_gen", srcs = srcs)
    native.filegroup(name = name + "_c", srcs = [":" + name + "_gen"], output_group = "c")
    native.filegroup(name = name + "_h", srcs = [":" + name + "_gen"], output_group = "h")
    native.cc_library(
        name = name,
        srcs = [":" + name + "_c"],
        hdrs = [":" + name + "_h"],
        includes = ["."],
        copts = ["-Wno-unused-parameter"],
        deps = deps + ["//bazel:protobuf_c"],
        visibility = visibility,
    )
