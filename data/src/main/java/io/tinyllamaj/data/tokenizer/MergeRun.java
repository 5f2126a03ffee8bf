package io.tinyllamaj.data.tokenizer;

import java.util.Arrays;

/**
 * Byte-pair merging of one chunk of symbols, the way SentencePiece's BPE model does it:
 * repeatedly merge the adjacent pair with the best (lowest) rank, the leftmost one on ties,
 * until no adjacent pair has a merge rule.
 *
 * <p>The symbols form a doubly linked list over int arrays, and the candidate pairs sit in a
 * binary min-heap of longs {@code rank << 32 | leftPosition}, so one comparison orders by rank
 * and then position. A symbol keeps the position of its leftmost original character, so
 * positions stay in text order as symbols merge. Entries go stale when a neighbour merges; a
 * popped entry is used only if the pair now at its position still has the popped rank (then
 * it is exactly as good as any fresh entry for it would be).
 *
 * <p>One instance per encode call (it is mutable scratch space); it grows to the longest chunk.
 */
final class MergeRun {

    private static final int DEAD = Integer.MIN_VALUE;

    private final LongIntMap mergeIndex;
    private final int[] mergeRank;
    private final int[] mergeResult;

    private int[] symbols = new int[64];
    private int[] prev = new int[64];
    private int[] next = new int[64];
    private long[] heap = new long[64];
    private int size;
    private int heapSize;

    MergeRun(LongIntMap mergeIndex, int[] mergeRank, int[] mergeResult) {
        this.mergeIndex = mergeIndex;
        this.mergeRank = mergeRank;
        this.mergeResult = mergeResult;
    }

    void clear() {
        size = 0;
    }

    boolean isEmpty() {
        return size == 0;
    }

    /** Appends a symbol: a piece id, or a negative code for a character outside the vocabulary. */
    void add(int symbol) {
        if (size == symbols.length) {
            int capacity = size * 2;
            symbols = Arrays.copyOf(symbols, capacity);
            prev = new int[capacity];
            next = new int[capacity];
        }
        symbols[size++] = symbol;
    }

    /** Merges the chunk in place; then positions from 0 through {@link #after(int)} to {@link #end()} walk the result. */
    void merge() {
        heapSize = 0;
        for (int i = 0; i < size; i++) {
            prev[i] = i - 1;
            next[i] = i + 1;
        }
        for (int i = 0; i + 1 < size; i++) {
            offer(i, i + 1);
        }
        while (heapSize > 0) {
            long top = poll();
            int left = (int) top;
            int right = next[left];
            if (symbols[left] == DEAD || right >= size) {
                continue;
            }
            int merge = mergeIndex.get(LongIntMap.pair(symbols[left], symbols[right]));
            if (merge < 0 || mergeRank[merge] != (int) (top >>> 32)) {
                continue;
            }
            symbols[left] = mergeResult[merge];
            symbols[right] = DEAD;
            int after = next[right];
            next[left] = after;
            if (after < size) {
                prev[after] = left;
                offer(left, after);
            }
            if (prev[left] >= 0) {
                offer(prev[left], left);
            }
        }
    }

    int after(int position) {
        return next[position];
    }

    int end() {
        return size;
    }

    int symbolAt(int position) {
        return symbols[position];
    }

    private void offer(int left, int right) {
        int merge = mergeIndex.get(LongIntMap.pair(symbols[left], symbols[right]));
        if (merge >= 0) {
            push(((long) mergeRank[merge] << 32) | left);
        }
    }

    private void push(long entry) {
        if (heapSize == heap.length) {
            heap = Arrays.copyOf(heap, heapSize * 2);
        }
        int child = heapSize++;
        while (child > 0) {
            int parent = (child - 1) >>> 1;
            if (heap[parent] <= entry) {
                break;
            }
            heap[child] = heap[parent];
            child = parent;
        }
        heap[child] = entry;
    }

    private long poll() {
        long top = heap[0];
        long last = heap[--heapSize];
        int parent = 0;
        while (true) {
            int child = 2 * parent + 1;
            if (child >= heapSize) {
                break;
            }
            if (child + 1 < heapSize && heap[child + 1] < heap[child]) {
                child++;
            }
            if (heap[child] >= last) {
                break;
            }
            heap[parent] = heap[child];
            parent = child;
        }
        heap[parent] = last;
        return top;
    }
}
