package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.data.sampler.MixtureSampler;
import io.tinyllamaj.trainer.checkpoint.CheckpointJson;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

/**
 * The loop's position as a checkpoint's state.json holds it ({@link Trainer#saveCheckpoint}
 * writes it), read strictly: a missing or mistyped key is refused by name before anything
 * is loaded.
 *
 * @param accumulation micro-batches per step of the saving run; empty for checkpoints older than the record of it
 * @param worldSize    ranks of the saving run; empty likewise
 * @param fingerprint  the config values the checkpoint is only valid for ({@link Trainer#fingerprint})
 */
record SavedState(Path checkpoint, long step, long updates, long tokensSeen, long skippedSteps, int consecutiveSkipped,
                  OptionalInt accumulation, OptionalInt worldSize, MixtureSampler.State sampler,
                  Map<String, String> fingerprint) {

    static SavedState read(Path checkpoint) throws IOException {
        CheckpointJson state = CheckpointStore.readState(checkpoint);
        Map<String, String> fingerprint = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> part : state.object("fingerprint").node().properties()) {
            fingerprint.put(part.getKey(), part.getValue().asText());
        }
        return new SavedState(checkpoint, state.count("step"), state.count("updates"), state.count("tokens_seen"),
                state.count("skipped_steps"), state.smallCount("consecutive_skipped"), optional(state, "accumulation"),
                optional(state, "world_size"), state.value("sampler", MixtureSampler.State.class, "a data position"),
                Map.copyOf(fingerprint));
    }

    private static OptionalInt optional(CheckpointJson state, String key) throws IOException {
        return state.has(key) ? OptionalInt.of(state.smallCount(key)) : OptionalInt.empty();
    }

    /** Refuses a config that differs where the checkpoint is only valid for the saved values, listing each difference. */
    void requireCompatible(TrainingConfig config, RunShape shape) {
        List<String> changes = new ArrayList<>();
        Trainer.fingerprint(config, shape).forEach((key, now) -> {
            String before = fingerprint.get(key);
            if (!now.equals(before)) {
                changes.add(key + " was " + before + ", now " + now);
            }
        });
        if (!changes.isEmpty()) {
            throw new IllegalArgumentException("cannot resume from " + checkpoint + ": the config changed where it must not: "
                    + String.join("; ", changes));
        }
    }
}
