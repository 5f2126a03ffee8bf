package io.tinyllamaj.kernels.cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * The C parameter list of one or more kernels (one per storage type or head size), declared once,
 * beside the Java class that launches them, in the order of their {@code extern "C" __global__}
 * declarations. Every launch is checked against it ({@link KernelArgs}), and KernelSignaturesTest
 * checks it against the sources, so a parameter added, dropped, reordered or retyped on one side
 * fails there instead of passing garbage.
 */
record KernelSignature(List<String> names, List<Param> params) {

    /** How a parameter is passed: its C type's size and kind. */
    enum Param {
        /** Any pointer (a CUdeviceptr). */
        PTR,
        /** {@code int}. */
        I32,
        /** {@code long long}. */
        I64,
        /** {@code float}. */
        F32
    }

    KernelSignature {
        names = List.copyOf(names);
        params = List.copyOf(params);
    }

    static KernelSignature of(String name, Param... params) {
        return new KernelSignature(List.of(name), List.of(params));
    }

    /** The same parameters for every name. */
    static KernelSignature of(List<String> names, Param... params) {
        return new KernelSignature(names, List.of(params));
    }

    /**
     * The kernels built once per storage type (common.cuh): each name over fp32 and, as
     * {@code name_bf16}, over bf16; a pointer is a pointer either way.
     */
    KernelSignature withBf16() {
        List<String> both = new ArrayList<>();
        for (String name : names) {
            both.add(name);
            both.add(name + "_bf16");
        }
        return new KernelSignature(both, params);
    }
}
