package io.tinyllamaj.model.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.ParameterLayout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A Hugging Face Llama checkpoint directory: {@code config.json} plus {@code model.safetensors}
 * or shards {@code model-0000x-of-0000y.safetensors} with {@code model.safetensors.index.json}.
 */
public final class HfCheckpoint {

    public static final String CONFIG = "config.json";
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private HfCheckpoint() {
    }

    /** Reads {@code config.json}, naming the file and key on any problem. */
    public static LlamaConfig readConfig(Path dir) throws IOException {
        Path file = dir.resolve(CONFIG);
        if (!Files.isDirectory(dir)) {
            throw new IOException(dir + ": checkpoint directory not found");
        }
        if (!Files.isRegularFile(file)) {
            throw new IOException(file + ": missing (a Hugging Face checkpoint directory needs config.json)");
        }
        JsonNode node;
        try {
            node = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new IOException(file + ": not valid JSON (" + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        String type = node.path("model_type").asText("llama");
        if (!type.equals("llama")) {
            throw new IOException(file + ": model_type is '" + type + "', only 'llama' is supported");
        }
        if (node.hasNonNull("rope_scaling")) {
            throw new IOException(file + ": rope_scaling is not supported");
        }
        if (node.path("attention_bias").asBoolean(false) || node.path("mlp_bias").asBoolean(false)) {
            throw new IOException(file + ": attention or MLP biases are not supported");
        }
        int dim = required(node, file, "hidden_size");
        int heads = required(node, file, "num_attention_heads");
        if (node.has("head_dim") && !node.get("head_dim").isNull() && node.get("head_dim").asInt() * heads != dim) {
            throw new IOException(file + ": head_dim " + node.get("head_dim").asInt() + " times num_attention_heads "
                    + heads + " differs from hidden_size " + dim + " (not supported)");
        }
        try {
            return new LlamaConfig("custom", required(node, file, "vocab_size"), dim, required(node, file, "num_hidden_layers"),
                    heads, node.path("num_key_value_heads").asInt(heads), required(node, file, "intermediate_size"),
                    (float) node.path("rms_norm_eps").asDouble(1e-6), (float) node.path("rope_theta").asDouble(10000),
                    node.path("max_position_embeddings").asInt(2048), node.path("tie_word_embeddings").asBoolean(false));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage());
        }
    }

    private static int required(JsonNode node, Path file, String key) throws IOException {
        JsonNode value = node.get(key);
        if (value == null || !value.canConvertToInt()) {
            throw new IOException(file + ": missing or non-integer '" + key + "'");
        }
        return value.asInt();
    }

    /** Loads a checkpoint onto {@code backend}. */
    public static LlamaModel load(Path dir, Backend backend) throws IOException {
        LlamaConfig config = readConfig(dir);
        LlamaModel model = new LlamaModel(backend, config);
        loadWeights(dir, model);
        return model;
    }

    /** Reads every tensor of the checkpoint in {@code dir} into {@code model}'s parameters. */
    public static void loadWeights(Path dir, LlamaModel model) throws IOException {
        Map<String, Path> files = weightFiles(dir);
        Map<Path, SafeTensors> open = new HashMap<>();
        try {
            Map<String, float[]> staged = new HashMap<>();
            for (HfTensorMap.Piece piece : HfTensorMap.pieces(model.config())) {
                Path file = files.get(piece.hfName());
                if (file == null) {
                    throw new IOException(dir + ": tensor " + piece.hfName() + " is missing from the checkpoint");
                }
                SafeTensors tensors = open.get(file);
                if (tensors == null) {
                    tensors = SafeTensors.open(file);
                    open.put(file, tensors);
                }
                ParameterLayout.Entry entry = model.layout().get(piece.ours());
                float[] values = staged.computeIfAbsent(piece.ours(), k -> new float[Math.toIntExact(entry.size())]);
                tensors.readInto(piece.hfName(), piece.hfShape(), values, piece.rowOffset() * piece.cols());
            }
            for (Map.Entry<String, float[]> e : staged.entrySet()) {
                model.backend().upload(model.parameter(e.getKey()), e.getValue(), 0, e.getValue().length);
            }
        } finally {
            open.values().forEach(SafeTensors::close);
        }
    }

    private static Map<String, Path> weightFiles(Path dir) throws IOException {
        Path index = dir.resolve(INDEX);
        Map<String, Path> files = new HashMap<>();
        if (Files.isRegularFile(index)) {
            JsonNode map;
            try {
                map = JSON.readTree(index.toFile()).path("weight_map");
            } catch (IOException e) {
                throw new IOException(index + ": not valid JSON");
            }
            if (!map.isObject()) {
                throw new IOException(index + ": has no weight_map");
            }
            for (var it = map.fields(); it.hasNext(); ) {
                var e = it.next();
                Path shard = dir.resolve(e.getValue().asText());
                if (!Files.isRegularFile(shard)) {
                    throw new IOException(shard + ": missing (named by " + index.getFileName() + " for " + e.getKey() + ")");
                }
                files.put(e.getKey(), shard);
            }
            return files;
        }
        Path single = dir.resolve(SINGLE);
        if (!Files.isRegularFile(single)) {
            throw new IOException(dir + ": no " + SINGLE + " and no " + INDEX + " (not a Hugging Face checkpoint)");
        }
        try (SafeTensors tensors = SafeTensors.open(single)) {
            for (String name : tensors.tensors().keySet()) {
                files.put(name, single);
            }
        }
        return files;
    }

    /**
     * Writes {@code model} as a Hugging Face checkpoint in {@code dtype}, split into shards of at
     * most {@code maxShardBytes} (one {@code model.safetensors} when it fits).
     */
    public static void save(LlamaModel model, Path dir, SafeTensors.DType dtype, long maxShardBytes) throws IOException {
        Files.createDirectories(dir);
        LlamaConfig c = model.config();
        List<List<SafeTensors.Entry>> shards = new ArrayList<>();
        List<SafeTensors.Entry> current = new ArrayList<>();
        long currentBytes = 0, totalBytes = 0;
        Map<String, float[]> downloaded = new HashMap<>();
        for (HfTensorMap.Piece piece : HfTensorMap.pieces(c)) {
            float[] values = downloaded.computeIfAbsent(piece.ours(), k -> model.backend().download(model.parameter(k)));
            long bytes = (long) piece.rows() * piece.cols() * dtype.bytes;
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(new SafeTensors.Entry(piece.hfName(), piece.hfShape(), values, piece.rowOffset() * piece.cols(), dtype));
            currentBytes += bytes;
            totalBytes += bytes;
        }
        shards.add(current);
        Map<String, String> metadata = Map.of("format", "pt");
        if (shards.size() == 1) {
            SafeTensors.write(dir.resolve(SINGLE), shards.getFirst(), metadata);
        } else {
            Map<String, String> weightMap = new TreeMap<>();
            for (int s = 0; s < shards.size(); s++) {
                String name = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
                SafeTensors.write(dir.resolve(name), shards.get(s), metadata);
                shards.get(s).forEach(e -> weightMap.put(e.name(), name));
            }
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", totalBytes);
            ObjectNode map = index.putObject("weight_map");
            weightMap.forEach(map::put);
            writeAtomically(dir.resolve(INDEX), JSON.writeValueAsBytes(index));
        }
        writeAtomically(dir.resolve(CONFIG), JSON.writeValueAsBytes(configJson(c, dtype)));
    }

    private static Map<String, Object> configJson(LlamaConfig c, SafeTensors.DType dtype) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("architectures", List.of("LlamaForCausalLM"));
        m.put("model_type", "llama");
        m.put("hidden_act", "silu");
        m.put("vocab_size", c.vocabSize());
        m.put("hidden_size", c.dim());
        m.put("intermediate_size", c.intermediate());
        m.put("num_hidden_layers", c.layers());
        m.put("num_attention_heads", c.heads());
        m.put("num_key_value_heads", c.kvHeads());
        m.put("head_dim", c.headSize());
        m.put("rms_norm_eps", (double) c.normEps());
        m.put("rope_theta", (double) c.ropeTheta());
        m.put("max_position_embeddings", c.maxSeqLen());
        m.put("tie_word_embeddings", c.tieEmbeddings());
        m.put("attention_bias", false);
        m.put("mlp_bias", false);
        m.put("bos_token_id", 1);
        m.put("eos_token_id", 2);
        m.put("torch_dtype", switch (dtype) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
        });
        return m;
    }

    private static void writeAtomically(Path file, byte[] bytes) throws IOException {
        Path temp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.write(temp, bytes);
        Files.move(temp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
}
