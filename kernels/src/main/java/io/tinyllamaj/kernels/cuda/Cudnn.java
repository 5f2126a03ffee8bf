package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BOOLEAN;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings to cuDNN 9's graph (backend) API ({@code libcudnn.so.9}): a handle on the
 * backend's stream, and descriptors built attribute by attribute, finalized, and destroyed by
 * their owner. Every cudnnStatus_t is checked; a failure names the call, the status and cuDNN's
 * own last error message. The numeric values are those of cudnn_graph.h (cuDNN 9; the enums only
 * grow between minor versions).
 */
final class Cudnn implements AutoCloseable {

    static final String LIB = "libcudnn.so.9";

    // cudnnBackendDescriptorType_t
    static final int POINTWISE_DESCRIPTOR = 0, ENGINECFG_DESCRIPTOR = 3, ENGINEHEUR_DESCRIPTOR = 4, EXECUTION_PLAN_DESCRIPTOR = 5,
            OPERATION_POINTWISE_DESCRIPTOR = 13, OPERATIONGRAPH_DESCRIPTOR = 15, VARIANT_PACK_DESCRIPTOR = 16, TENSOR_DESCRIPTOR = 17,
            MATMUL_DESCRIPTOR = 18, OPERATION_MATMUL_DESCRIPTOR = 19, REDUCTION_DESCRIPTOR = 21, OPERATION_REDUCTION_DESCRIPTOR = 22,
            OPERATION_RESHAPE_DESCRIPTOR = 31;

    // cudnnBackendAttributeName_t
    static final int POINTWISE_MODE = 0, POINTWISE_MATH_PREC = 1, POINTWISE_AXIS = 9;
    static final int ENGINEHEUR_MODE = 200, ENGINEHEUR_OPERATION_GRAPH = 201, ENGINEHEUR_RESULTS = 202;
    static final int EXECUTION_PLAN_HANDLE = 400, EXECUTION_PLAN_ENGINE_CONFIG = 401, EXECUTION_PLAN_WORKSPACE_SIZE = 402;
    static final int OPERATION_POINTWISE_PW_DESCRIPTOR = 750, OPERATION_POINTWISE_XDESC = 751, OPERATION_POINTWISE_BDESC = 752,
            OPERATION_POINTWISE_YDESC = 753, OPERATION_POINTWISE_ALPHA1 = 754, OPERATION_POINTWISE_ALPHA2 = 755,
            OPERATION_POINTWISE_TDESC = 758;
    static final int OPERATIONGRAPH_HANDLE = 800, OPERATIONGRAPH_OPS = 801;
    static final int TENSOR_BYTE_ALIGNMENT = 900, TENSOR_DATA_TYPE = 901, TENSOR_DIMENSIONS = 902, TENSOR_STRIDES = 903,
            TENSOR_UNIQUE_ID = 906, TENSOR_IS_VIRTUAL = 907, TENSOR_IS_BY_VALUE = 908;
    static final int VARIANT_PACK_UNIQUE_IDS = 1000, VARIANT_PACK_DATA_POINTERS = 1001, VARIANT_PACK_WORKSPACE = 1003;
    static final int MATMUL_COMP_TYPE = 1500, OPERATION_MATMUL_ADESC = 1520, OPERATION_MATMUL_BDESC = 1521,
            OPERATION_MATMUL_CDESC = 1522, OPERATION_MATMUL_DESC = 1523;
    static final int REDUCTION_OPERATOR = 1600, REDUCTION_COMP_TYPE = 1601, OPERATION_REDUCTION_XDESC = 1610,
            OPERATION_REDUCTION_YDESC = 1611, OPERATION_REDUCTION_DESC = 1612;
    static final int OPERATION_RESHAPE_XDESC = 2200, OPERATION_RESHAPE_YDESC = 2201;

    // cudnnBackendAttributeType_t
    static final int TYPE_HANDLE = 0, TYPE_DATA_TYPE = 1, TYPE_BOOLEAN = 2, TYPE_INT64 = 3, TYPE_FLOAT = 4, TYPE_VOID_PTR = 6,
            TYPE_HEUR_MODE = 8, TYPE_POINTWISE_MODE = 14, TYPE_BACKEND_DESCRIPTOR = 15, TYPE_REDUCTION_OPERATOR_TYPE = 18;

    // cudnnDataType_t
    static final int DATA_FLOAT = 0, DATA_INT32 = 4, DATA_BFLOAT16 = 9, DATA_BOOLEAN = 11;

    // cudnnPointwiseMode_t
    static final int PW_ADD = 0, PW_MUL = 1, PW_DIV = 6, PW_SUB = 9, PW_EXP = 13, PW_LOG = 15, PW_CMP_GE = 303, PW_GEN_INDEX = 501,
            PW_BINARY_SELECT = 601;

    // cudnnReduceTensorOp_t
    static final int REDUCE_ADD = 0, REDUCE_MAX = 3;

    // cudnnBackendHeurMode_t
    static final int HEUR_MODE_A = 3;

    private final MethodHandle create, destroy, setStream, createDescriptor, destroyDescriptor, finalizeDescriptor, setAttribute,
            getAttribute, execute, errorString, lastError;
    private final long version;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;

    /** cuDNN on {@code stream}; a {@link CudaUnavailableException} when libcudnn.so.9 does not load. */
    Cudnn(MemorySegment stream) {
        SymbolLookup lib = Native.open(LIB, "TINYLLAMA_LIBCUDNN", "/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu");
        if (lib == null) {
            throw new CudaUnavailableException("cuDNN attention unavailable: " + LIB + " is not on the library path; set TINYLLAMA_LIBCUDNN to its directory");
        }
        create = Native.status(lib, LIB, "cudnnCreate", ADDRESS);
        destroy = Native.status(lib, LIB, "cudnnDestroy", ADDRESS);
        setStream = Native.status(lib, LIB, "cudnnSetStream", ADDRESS, ADDRESS);
        createDescriptor = Native.status(lib, LIB, "cudnnBackendCreateDescriptor", JAVA_INT, ADDRESS);
        destroyDescriptor = Native.status(lib, LIB, "cudnnBackendDestroyDescriptor", ADDRESS);
        finalizeDescriptor = Native.status(lib, LIB, "cudnnBackendFinalize", ADDRESS);
        setAttribute = Native.status(lib, LIB, "cudnnBackendSetAttribute", ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS);
        getAttribute = Native.status(lib, LIB, "cudnnBackendGetAttribute", ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS);
        execute = Native.status(lib, LIB, "cudnnBackendExecute", ADDRESS, ADDRESS, ADDRESS);
        errorString = Native.LINKER.downcallHandle(symbol(lib, "cudnnGetErrorString"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
        lastError = Native.LINKER.downcallHandle(symbol(lib, "cudnnGetLastErrorString"), FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG));
        MethodHandle getVersion = Native.LINKER.downcallHandle(symbol(lib, "cudnnGetVersion"), FunctionDescriptor.of(JAVA_LONG));
        try {
            version = (long) getVersion.invokeExact();
            MemorySegment h = arena.allocate(ADDRESS);
            check("cudnnCreate", (int) create.invokeExact(h));
            handle = h.get(ADDRESS, 0);
            check("cudnnSetStream", (int) setStream.invokeExact(handle, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    private static MemorySegment symbol(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new CudaUnavailableException(LIB + " has no symbol " + name));
    }

    /** cudnnGetVersion(): 91400 for 9.14.0. */
    long version() {
        return version;
    }

    /** A new descriptor of {@code type}; its owner destroys it. */
    Descriptor descriptor(int type) {
        try (Arena call = Arena.ofConfined()) {
            MemorySegment d = call.allocate(ADDRESS);
            check("cudnnBackendCreateDescriptor(" + type + ")", (int) createDescriptor.invokeExact(type, d));
            return new Descriptor(d.get(ADDRESS, 0), type);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Runs a finalized plan with a finalized variant pack, on the handle's stream. */
    void execute(Descriptor plan, Descriptor variantPack) {
        try {
            check("cudnnBackendExecute", (int) execute.invokeExact(handle, plan.address, variantPack.address));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** One backend descriptor: attribute setters that return it, so a descriptor reads as one expression. */
    final class Descriptor implements AutoCloseable {
        final MemorySegment address;
        final int type;
        private boolean destroyed;

        private Descriptor(MemorySegment address, int type) {
            this.address = address;
            this.type = type;
        }

        Descriptor longs(int name, long... values) {
            try (Arena call = Arena.ofConfined()) {
                return set(name, TYPE_INT64, values.length, call.allocateFrom(JAVA_LONG, values));
            }
        }

        /** An attribute whose elements are C enums (int32): data types, modes, operators. */
        Descriptor enums(int name, int attributeType, int... values) {
            try (Arena call = Arena.ofConfined()) {
                return set(name, attributeType, values.length, call.allocateFrom(JAVA_INT, values));
            }
        }

        Descriptor bool(int name, boolean value) {
            try (Arena call = Arena.ofConfined()) {
                MemorySegment v = call.allocate(JAVA_BOOLEAN);
                v.set(JAVA_BOOLEAN, 0, value);
                return set(name, TYPE_BOOLEAN, 1, v);
            }
        }

        Descriptor floats(int name, float value) {
            try (Arena call = Arena.ofConfined()) {
                return set(name, TYPE_FLOAT, 1, call.allocateFrom(JAVA_FLOAT, value));
            }
        }

        Descriptor descriptors(int name, Descriptor... values) {
            try (Arena call = Arena.ofConfined()) {
                MemorySegment array = call.allocate(ADDRESS, values.length);
                for (int i = 0; i < values.length; i++) {
                    array.setAtIndex(ADDRESS, i, values[i].address);
                }
                return set(name, TYPE_BACKEND_DESCRIPTOR, values.length, array);
            }
        }

        /** Pointers (device addresses, or host addresses of by-value scalars), as void* elements. */
        Descriptor pointers(int name, long... values) {
            try (Arena call = Arena.ofConfined()) {
                return set(name, TYPE_VOID_PTR, values.length, call.allocateFrom(JAVA_LONG, values));
            }
        }

        Descriptor handle(int name) {
            try (Arena call = Arena.ofConfined()) {
                MemorySegment h = call.allocate(ADDRESS);
                h.set(ADDRESS, 0, handle);
                return set(name, TYPE_HANDLE, 1, h);
            }
        }

        private Descriptor set(int name, int attributeType, long count, MemorySegment elements) {
            try {
                check("cudnnBackendSetAttribute(descriptor " + type + ", attribute " + name + ")",
                        (int) setAttribute.invokeExact(address, name, attributeType, count, elements));
                return this;
            } catch (Throwable t) {
                throw Native.rethrow(t);
            }
        }

        /** One int64 attribute of a finalized descriptor (a plan's workspace size). */
        long getLong(int name) {
            try (Arena call = Arena.ofConfined()) {
                MemorySegment count = call.allocate(JAVA_LONG), value = call.allocate(JAVA_LONG);
                check("cudnnBackendGetAttribute(descriptor " + type + ", attribute " + name + ")",
                        (int) getAttribute.invokeExact(address, name, TYPE_INT64, 1L, count, value));
                return value.get(JAVA_LONG, 0);
            } catch (Throwable t) {
                throw Native.rethrow(t);
            }
        }

        /**
         * Fills {@code into} (created, not finalized) from a descriptor-valued attribute (a
         * heuristic's results); returns how many it filled. With no {@code into}, how many there are.
         */
        int getDescriptors(int name, Descriptor... into) {
            try (Arena call = Arena.ofConfined()) {
                MemorySegment count = call.allocate(JAVA_LONG);
                MemorySegment array = into.length == 0 ? MemorySegment.NULL : call.allocate(ADDRESS, into.length);
                for (int i = 0; i < into.length; i++) {
                    array.setAtIndex(ADDRESS, i, into[i].address);
                }
                check("cudnnBackendGetAttribute(descriptor " + type + ", attribute " + name + ")",
                        (int) getAttribute.invokeExact(address, name, TYPE_BACKEND_DESCRIPTOR, (long) into.length, count, array));
                return Math.toIntExact(count.get(JAVA_LONG, 0));
            } catch (Throwable t) {
                throw Native.rethrow(t);
            }
        }

        Descriptor finish() {
            try {
                check("cudnnBackendFinalize(descriptor " + type + ")", (int) finalizeDescriptor.invokeExact(address));
                return this;
            } catch (Throwable t) {
                throw Native.rethrow(t);
            }
        }

        /** Finalizes, returning cuDNN's status instead of throwing (an engine config that does not fit the graph). */
        int tryFinish() {
            try {
                return (int) finalizeDescriptor.invokeExact(address);
            } catch (Throwable t) {
                throw Native.rethrow(t);
            }
        }

        @Override
        public void close() {
            if (!destroyed) {
                destroyed = true;
                try {
                    int status = (int) destroyDescriptor.invokeExact(address);
                    if (status != 0) {
                        throw new CudaException("cudnnBackendDestroyDescriptor failed: " + describe(status));
                    }
                } catch (Throwable t) {
                    throw Native.rethrow(t);
                }
            }
        }
    }

    void check(String call, int status) {
        if (status != 0) {
            throw new CudaException(call + " failed: " + describe(status));
        }
    }

    /** The status's name and cuDNN's last error message (which says which attribute or pattern it refused). */
    String describe(int status) {
        try (Arena call = Arena.ofConfined()) {
            MemorySegment name = ((MemorySegment) errorString.invokeExact(status)).reinterpret(256);
            MemorySegment message = call.allocate(JAVA_BYTE, 1024);
            lastError.invokeExact(message, 1024L);
            String last = message.getString(0).strip();
            return "cudnnStatus_t " + status + " (" + name.getString(0) + ")" + (last.isEmpty() ? "" : ": " + last);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    @Override
    public void close() {
        try {
            check("cudnnDestroy", (int) destroy.invokeExact(handle));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        } finally {
            arena.close();
        }
    }
}
