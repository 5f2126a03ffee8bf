package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/** Library loading and downcall lookup shared by the per-library bindings. */
final class Native {

    static final Linker LINKER = Linker.nativeLinker();

    private Native() {
    }

    /**
     * Opens a shared library by its soname (the dynamic loader's search path), then in the
     * directories of {@code envVar}'s value and the given fallbacks; null when none opens.
     */
    static SymbolLookup open(String soname, String envVar, String... fallbackDirs) {
        List<String> candidates = new ArrayList<>();
        String fromEnv = System.getenv(envVar);
        if (fromEnv != null && !fromEnv.isBlank()) {
            candidates.add(Files.isDirectory(Path.of(fromEnv)) ? Path.of(fromEnv, soname).toString() : fromEnv);
        }
        candidates.add(soname);
        for (String dir : fallbackDirs) {
            candidates.add(Path.of(dir, soname).toString());
        }
        for (String candidate : candidates) {
            try {
                return candidate.contains("/")
                        ? SymbolLookup.libraryLookup(Path.of(candidate), java.lang.foreign.Arena.global())
                        : SymbolLookup.libraryLookup(candidate, java.lang.foreign.Arena.global());
            } catch (IllegalArgumentException notThere) {
                // try the next place
            }
        }
        return null;
    }

    /** A downcall returning a C int status. */
    static MethodHandle status(SymbolLookup lib, String library, String symbol, MemoryLayout... args) {
        return LINKER.downcallHandle(
                lib.find(symbol).orElseThrow(() -> new CudaUnavailableException(library + " has no symbol " + symbol)),
                FunctionDescriptor.of(JAVA_INT, args));
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }
}
