package io.tinyllamaj.trainer.config;

import io.tinyllamaj.model.LlamaConfig;

/**
 * The numbers a run is made of, derived once from a validated {@link TrainingConfig}:
 * one optimizer step takes {@code accumulation} micro-batches of {@code microBatch} sequences
 * of {@code seqLen} tokens on each of {@code worldSize} ranks. {@link ConfigLoader#validate}
 * bounds every count, so each product here, and steps x {@link #tokensPerStep}, fits a long.
 */
public record RunShape(LlamaConfig model, int seqLen, int microBatch, int worldSize, int accumulation,
                       long globalBatchSequences, long maxSteps) {

    /** Tokens in one optimizer step, all ranks together. */
    public long tokensPerStep() {
        return globalBatchSequences * seqLen;
    }

    /** Tokens one rank processes in one optimizer step. */
    public long tokensPerRankStep() {
        return (long) accumulation * microBatch * seqLen;
    }
}
