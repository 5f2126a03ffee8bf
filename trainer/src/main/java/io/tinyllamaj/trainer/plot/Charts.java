package io.tinyllamaj.trainer.plot;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.trainer.run.MetricsLog;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * PNG charts of a run's metrics.jsonl: loss with the validation loss (the mixture's and each
 * source's), the zero-shot tasks' accuracy when eval.tasks ran, learning rate, throughput. Validation points are drawn with markers: they are
 * sparse, and a run with one evaluation has a single point that a line alone would not show.
 */
public final class Charts {

    private static final int WIDTH = 900;
    private static final int HEIGHT = 500;
    /** Dark, distinct colours that read on white (JFreeChart's defaults include yellow on grey). */
    private static final Color[] PALETTE = {new Color(0xd62728), new Color(0x1f77b4), new Color(0x2ca02c), new Color(0xff7f0e),
            new Color(0x9467bd), new Color(0x8c564b), new Color(0xe377c2), new Color(0x17becf)};
    private static final Color GRID = new Color(0xdddddd);

    private Charts() {
    }

    /** Writes the charts into {@code <run>/plots/} and returns their paths. */
    public static List<Path> write(Path runDirectory) throws IOException {
        System.setProperty("java.awt.headless", "true");
        List<JsonNode> records = records(runDirectory);
        Path plots = runDirectory.resolve("plots");
        DurableFiles.createDirectories(plots);
        List<Path> written = new ArrayList<>();
        List<Line> loss = new ArrayList<>();
        loss.add(new Line(series(records, trainLoss(records), "train loss"), false));
        loss.add(new Line(series(records, "val_loss", "validation loss"), true));
        for (String source : objectKeys(records, "val_loss_per_source")) {
            loss.add(new Line(series(records, "val_loss_per_source", source, "validation loss (" + source + ")"), true));
        }
        written.add(save(plots.resolve("loss.png"), "Loss", "cross-entropy", loss));
        List<Line> tasks = new ArrayList<>();
        for (String task : objectKeys(records, "task_acc")) {
            // the metric TinyLlama's table reports: acc_norm where the harness has it, else acc
            boolean norm = objectKeys(records, "task_acc_norm").contains(task);
            tasks.add(new Line(series(records, norm ? "task_acc_norm" : "task_acc", task, task + (norm ? " (acc_norm)" : " (acc)")), true));
        }
        if (!tasks.isEmpty()) {
            written.add(save(plots.resolve("tasks.png"), "Zero-shot tasks", "accuracy", tasks));
        }
        written.add(save(plots.resolve("lr.png"), "Learning rate", "lr", List.of(new Line(series(records, "lr", "lr"), false))));
        written.add(save(plots.resolve("throughput.png"), "Throughput", "tokens/s",
                List.of(new Line(series(records, "tokens_per_s", "tokens/s"), false))));
        return written;
    }

    /**
     * Writes {@code <runs[0]>/plots/loss-compare.png}: the train and validation loss of every run
     * on one chart (two runs of one recipe in another precision, say), each named by its
     * directory; and {@code loss-difference.png}: each other run's loss relative to the first's
     * ({@link #differenceLines}), where a gap of a fraction of a percent shows. Returns their paths.
     */
    public static List<Path> compare(List<Path> runs) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Set<Path> distinct = new HashSet<>();
        for (Path run : runs) {
            if (!distinct.add(run.toAbsolutePath().normalize())) {
                throw new IllegalArgumentException(run + " is named twice among the runs to compare");
            }
        }
        List<String> names = names(runs);
        List<List<JsonNode>> records = records(runs);
        Path plots = runs.get(0).resolve("plots");
        DurableFiles.createDirectories(plots);
        return List.of(save(plots.resolve("loss-compare.png"), "Loss", "cross-entropy", comparisonLines(records, names)),
                save(plots.resolve("loss-difference.png"), "Loss against " + names.get(0), "relative difference (%)",
                        differenceLines(records, names)));
    }

    /** Each run's name: its directory's, or its path where two directories share a name. */
    private static List<String> names(List<Path> runs) {
        List<String> names = new ArrayList<>();
        for (Path run : runs) {
            names.add(String.valueOf(run.toAbsolutePath().normalize().getFileName()));
        }
        return new LinkedHashSet<>(names).size() == names.size() ? names : runs.stream().map(Path::toString).toList();
    }

    /** The comparison's lines: each run's train loss, then each run's validation loss (markers). */
    static List<Line> comparisonLines(List<List<JsonNode>> records, List<String> names) {
        List<Line> train = new ArrayList<>(), validation = new ArrayList<>();
        for (int i = 0; i < records.size(); i++) {
            train.add(new Line(series(records.get(i), trainLoss(records.get(i)), "train loss (" + names.get(i) + ")"), false, i));
            validation.add(new Line(series(records.get(i), "val_loss", "validation loss (" + names.get(i) + ")"), true, i));
        }
        train.addAll(validation);
        return train;
    }

    static List<Line> comparisonLines(List<Path> runs) throws IOException {
        return comparisonLines(records(runs), names(runs));
    }

    static List<Line> differenceLines(List<Path> runs) throws IOException {
        return differenceLines(records(runs), names(runs));
    }

    private static List<List<JsonNode>> records(List<Path> runs) throws IOException {
        List<List<JsonNode>> records = new ArrayList<>();
        for (Path run : runs) {
            records.add(records(run));
        }
        return records;
    }

    /**
     * Logged points in each trailing window of the difference chart where the records hold one
     * step's loss alone (metrics written before loss_mean), which is noisy.
     */
    static final int DIFFERENCE_WINDOW = 10;

    /**
     * The train loss a chart draws: {@code loss_mean} (the mean over each logging interval) where
     * the records have it, else {@code loss} (the logged step's own).
     */
    static String trainLoss(List<JsonNode> records) {
        return records.stream().anyMatch(r -> r.has("loss_mean")) ? "loss_mean" : "loss";
    }

    /**
     * The difference chart's lines, in percent of the first run's loss: each other run's train
     * loss at every point both runs logged where every run has {@code loss_mean}, else over the
     * last {@link #DIFFERENCE_WINDOW} steps both logged (the ratio of the two sums, less 1, at
     * the window's last step, from the first full window on); then each other run's validation
     * loss at every evaluation both have (markers).
     */
    static List<Line> differenceLines(List<List<JsonNode>> records, List<String> names) {
        boolean means = records.stream().allMatch(r -> trainLoss(r).equals("loss_mean"));
        String key = means ? "loss_mean" : "loss";
        int window = means ? 1 : DIFFERENCE_WINDOW;
        XYSeries baseTrain = series(records.get(0), key, ""), baseValidation = series(records.get(0), "val_loss", "");
        List<Line> train = new ArrayList<>(), validation = new ArrayList<>();
        for (int i = 1; i < records.size(); i++) {
            XYSeries other = series(records.get(i), key, "");
            XYSeries windows = new XYSeries((means ? "train loss, mean of each logging interval (" : "train loss, " + window
                    + " logged steps (") + names.get(i) + ")", true, false);
            List<double[]> common = new ArrayList<>(); // step, base, other
            for (int k = 0; k < other.getItemCount(); k++) {
                int at = baseTrain.indexOf(other.getX(k));
                if (at >= 0) {
                    common.add(new double[] {other.getX(k).doubleValue(), baseTrain.getY(at).doubleValue(), other.getY(k).doubleValue()});
                }
            }
            for (int end = window - 1; end < common.size(); end++) {
                double base = 0, sum = 0;
                for (int k = end - window + 1; k <= end; k++) {
                    base += common.get(k)[1];
                    sum += common.get(k)[2];
                }
                windows.add(common.get(end)[0], 100 * (sum / base - 1));
            }
            train.add(new Line(windows, false, i));
            XYSeries otherValidation = series(records.get(i), "val_loss", "");
            XYSeries evaluations = new XYSeries("validation loss (" + names.get(i) + ")", true, false);
            for (int k = 0; k < otherValidation.getItemCount(); k++) {
                int at = baseValidation.indexOf(otherValidation.getX(k));
                if (at >= 0) {
                    evaluations.add(otherValidation.getX(k), 100 * (otherValidation.getY(k).doubleValue()
                            / baseValidation.getY(at).doubleValue() - 1));
                }
            }
            validation.add(new Line(evaluations, true, i));
        }
        train.addAll(validation);
        return train;
    }

    /** A run's metrics records; one line naming the problem when there are none. */
    private static List<JsonNode> records(Path runDirectory) throws IOException {
        Path metricsFile = runDirectory.resolve(MetricsLog.FILE);
        if (!Files.isRegularFile(metricsFile)) {
            throw new IllegalArgumentException(runDirectory + " has no " + MetricsLog.FILE);
        }
        List<JsonNode> records = MetricsLog.read(metricsFile);
        if (records.isEmpty()) {
            throw new IllegalArgumentException(metricsFile + " has no complete line yet");
        }
        return records;
    }

    /**
     * A series, whether its points get markers, and its colour's place in the palette (a run's
     * train and validation lines share one); -1: the series' own place on the chart.
     */
    record Line(XYSeries series, boolean markers, int color) {
        Line(XYSeries series, boolean markers) {
            this(series, markers, -1);
        }
    }

    /** The keys of any record's {@code object} (the sources of val_loss_per_source, the tasks of task_acc), in first-seen order. */
    private static List<String> objectKeys(List<JsonNode> records, String object) {
        Set<String> names = new LinkedHashSet<>();
        for (JsonNode record : records) {
            record.path(object).fieldNames().forEachRemaining(names::add);
        }
        return List.copyOf(names);
    }

    private static XYSeries series(List<JsonNode> records, String object, String field, String label) {
        XYSeries series = new XYSeries(label, true, false);
        for (JsonNode record : records) {
            JsonNode value = record.path(object).get(field);
            if (value != null && value.isNumber() && Double.isFinite(value.asDouble())) {
                series.addOrUpdate(record.path("step").asDouble(), value.asDouble());
            }
        }
        return series;
    }

    private static XYSeries series(List<JsonNode> records, String field, String label) {
        XYSeries series = new XYSeries(label, true, false);
        for (JsonNode record : records) {
            JsonNode value = record.get(field);
            if (value != null && value.isNumber() && Double.isFinite(value.asDouble())) {
                series.addOrUpdate(record.path("step").asDouble(), value.asDouble());
            }
        }
        return series;
    }

    private static Path save(Path file, String title, String yLabel, List<Line> lines) throws IOException {
        XYSeriesCollection data = new XYSeriesCollection();
        List<Line> drawn = new ArrayList<>();
        for (Line line : lines) {
            if (!line.series().isEmpty()) {
                data.addSeries(line.series());
                drawn.add(line);
            }
        }
        JFreeChart chart = ChartFactory.createXYLineChart(title, "step", yLabel, data, PlotOrientation.VERTICAL,
                true, false, false);
        XYPlot plot = chart.getXYPlot();
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(GRID);
        plot.setRangeGridlinePaint(GRID);
        XYLineAndShapeRenderer renderer = (XYLineAndShapeRenderer) plot.getRenderer();
        for (int i = 0; i < drawn.size(); i++) {
            renderer.setSeriesShapesVisible(i, drawn.get(i).markers());
            int color = drawn.get(i).color() >= 0 ? drawn.get(i).color() : i;
            renderer.setSeriesPaint(i, PALETTE[color % PALETTE.length]);
            renderer.setSeriesStroke(i, new BasicStroke(2f));
        }
        ((NumberAxis) chart.getXYPlot().getRangeAxis()).setAutoRangeIncludesZero(false);
        // replaced whole: a crash mid-write never leaves a torn chart beside a good one
        java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
        ChartUtils.writeChartAsPNG(png, chart, WIDTH, HEIGHT);
        DurableFiles.SYSTEM.replace(file, png.toByteArray());
        return file;
    }
}
