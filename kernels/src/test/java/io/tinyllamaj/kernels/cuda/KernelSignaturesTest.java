package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.cuda.KernelSignature.Param;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The kernels' launch contract on both sides, without a GPU: every {@code extern "C" __global__}
 * kernel of the fatbin's sources (macros expanded by {@code nvcc -E}) has exactly the parameter
 * types, in order, that its Java {@link KernelSignature} declares, no Java signature names a kernel
 * the sources lack, and every module constant the launchers read is an {@code extern "C"
 * __constant__ int} of the sources. Skipped where nvcc is not installed.
 */
class KernelSignaturesTest {

    private static final Path CUDA = Path.of(System.getProperty("basedir", "."), "src", "main", "cuda").toAbsolutePath().normalize();

    private static Map<String, List<Param>> kernels;
    private static List<String> constants;

    @BeforeAll
    static void preprocess() throws IOException, InterruptedException {
        Optional<Path> nvcc = nvcc();
        Assumptions.assumeTrue(nvcc.isPresent(), "nvcc is not installed");
        Path out = Files.createTempFile("tinyllama", ".ii");
        try {
            Process p = new ProcessBuilder(nvcc.get().toString(), "-E", "-std=c++17", "-x", "cu", CUDA.resolve("tinyllama.cu").toString(),
                    "-o", out.toString()).redirectErrorStream(true).start();
            String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.waitFor(), "nvcc -E failed: " + log);
            String ours = ownLines(Files.readString(out));
            kernels = kernels(ours);
            constants = constants(ours);
        } finally {
            Files.deleteIfExists(out);
        }
    }

    /** Every kernel source compiles on its own, not only after what tinyllama.cu included before it. */
    @Test
    void everyKernelSourceCompilesOnItsOwn() throws IOException, InterruptedException {
        Path nvcc = nvcc().orElseThrow();
        ProcessBuilder p = new ProcessBuilder("bash", CUDA.resolve("check-standalone.sh").toString()).redirectErrorStream(true);
        p.environment().put("NVCC", nvcc.toString());
        Process run = p.start();
        String log = new String(run.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, run.waitFor(), log);
    }

    private static Optional<Path> nvcc() {
        List<Path> candidates = new ArrayList<>();
        String env = System.getenv("NVCC");
        if (env != null && !env.isBlank()) {
            candidates.add(Path.of(env));
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty()) {
                candidates.add(Path.of(dir, "nvcc"));
            }
        }
        candidates.add(Path.of("/usr/local/cuda/bin/nvcc"));
        return candidates.stream().filter(Files::isExecutable).findFirst();
    }

    /** The preprocessed text that comes from the kernel sources themselves (line markers name the file), not from CUDA's headers. */
    private static String ownLines(String preprocessed) {
        StringBuilder ours = new StringBuilder();
        boolean own = false;
        Pattern marker = Pattern.compile("^#\\s*(?:line\\s+)?\\d+\\s+\"([^\"]*)\".*");
        for (String line : preprocessed.split("\n")) {
            Matcher m = marker.matcher(line);
            if (m.matches()) {
                own = Path.of(m.group(1)).toAbsolutePath().normalize().startsWith(CUDA);
            } else if (own) {
                ours.append(line).append('\n');
            }
        }
        return ours.toString();
    }

    /** name -> parameter types of each {@code extern "C" __global__ void [attributes] name(params)}. */
    private static Map<String, List<Param>> kernels(String text) {
        Map<String, List<Param>> found = new TreeMap<>();
        String start = "extern \"C\" __attribute__((global)) void";
        for (int at = text.indexOf(start); at >= 0; at = text.indexOf(start, at + 1)) {
            int i = skipSpace(text, at + start.length());
            while (text.startsWith("__attribute__", i)) {
                i = skipSpace(text, closing(text, text.indexOf('(', i)) + 1);
            }
            int open = text.indexOf('(', i);
            String name = text.substring(i, open).strip();
            String params = text.substring(open + 1, closing(text, open));
            List<Param> types = new ArrayList<>();
            for (String param : params.split(",")) {
                types.add(type(name, param.strip()));
            }
            assertTrue(found.put(name, types) == null, "kernel " + name + " is declared twice");
        }
        return found;
    }

    private static List<String> constants(String text) {
        List<String> found = new ArrayList<>();
        Matcher m = Pattern.compile("__attribute__\\(\\(constant\\)\\)\\s+int\\s+(\\w+)\\s*=").matcher(text);
        while (m.find()) {
            found.add(m.group(1));
        }
        return found;
    }

    private static int skipSpace(String text, int i) {
        while (i < text.length() && Character.isWhitespace(text.charAt(i))) {
            i++;
        }
        return i;
    }

    /** The index of the parenthesis that closes the one at {@code open}. */
    private static int closing(String text, int open) {
        int depth = 0;
        for (int i = open; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '(') {
                depth++;
            } else if (c == ')' && --depth == 0) {
                return i;
            }
        }
        throw new IllegalStateException("unbalanced parentheses after " + text.substring(open, Math.min(text.length(), open + 80)));
    }

    /** A C parameter ("const float* x", "long long n") as the launcher passes it. */
    private static Param type(String kernel, String param) {
        if (param.contains("*")) {
            return Param.PTR;
        }
        String type = param.substring(0, param.lastIndexOf(' ')).replace("const", "").strip().replaceAll("\\s+", " ");
        return switch (type) {
            case "int" -> Param.I32;
            case "long long", "unsigned long long" -> Param.I64;
            case "float" -> Param.F32;
            default -> throw new AssertionError(kernel + ": parameter '" + param + "' has a type the launcher cannot pass");
        };
    }

    @Test
    void everyKernelHasTheJavaSignatureOfItsSource() {
        assertTrue(kernels.size() > 40, "found only " + kernels.keySet());
        List<String> wrong = new ArrayList<>();
        Map<String, KernelSignature> declared = new TreeMap<>();
        for (KernelSignature s : CudaBackend.signatures()) {
            for (String name : s.names()) {
                if (declared.put(name, s) != null) {
                    wrong.add(name + ": declared twice in Java");
                }
            }
        }
        for (var kernel : kernels.entrySet()) {
            KernelSignature s = declared.get(kernel.getKey());
            if (s == null) {
                wrong.add(kernel.getKey() + ": no Java signature");
            } else if (!s.params().equals(kernel.getValue())) {
                wrong.add(kernel.getKey() + ": the source takes " + kernel.getValue() + ", Java passes " + s.params());
            }
        }
        for (String name : new TreeSet<>(declared.keySet())) {
            if (!kernels.containsKey(name)) {
                wrong.add(name + ": declared in Java, not in the sources");
            }
        }
        assertTrue(wrong.isEmpty(), String.join("\n", wrong));
    }

    @Test
    void everyConstantTheLaunchersReadIsInTheSources() {
        List<String> missing = new ArrayList<>(CudaBackend.constants());
        missing.removeAll(constants);
        assertTrue(missing.isEmpty(), "not an extern \"C\" __constant__ int of the sources: " + missing);
    }
}
