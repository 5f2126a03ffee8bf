package io.tinyllamaj.trainer.plot;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.trainer.run.MetricsLog;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** PNG charts of a run's metrics.jsonl: loss with validation loss, learning rate, throughput. */
public final class Charts {

    private static final int WIDTH = 900;
    private static final int HEIGHT = 500;

    private Charts() {
    }

    /** Writes the charts into {@code <run>/plots/} and returns their paths. */
    public static List<Path> write(Path runDirectory) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Path metricsFile = runDirectory.resolve(MetricsLog.FILE);
        if (!Files.isRegularFile(metricsFile)) {
            throw new IllegalArgumentException(runDirectory + " has no " + MetricsLog.FILE);
        }
        List<JsonNode> records = MetricsLog.read(metricsFile);
        if (records.isEmpty()) {
            throw new IllegalArgumentException(metricsFile + " has no complete line yet");
        }
        Path plots = Files.createDirectories(runDirectory.resolve("plots"));
        List<Path> written = new ArrayList<>();
        written.add(save(plots.resolve("loss.png"), "Loss", "cross-entropy",
                series(records, "loss", "train loss"), series(records, "val_loss", "validation loss")));
        written.add(save(plots.resolve("lr.png"), "Learning rate", "lr", series(records, "lr", "lr")));
        written.add(save(plots.resolve("throughput.png"), "Throughput", "tokens/s",
                series(records, "tokens_per_s", "tokens/s")));
        return written;
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

    private static Path save(Path file, String title, String yLabel, XYSeries... series) throws IOException {
        XYSeriesCollection data = new XYSeriesCollection();
        for (XYSeries s : series) {
            if (!s.isEmpty()) {
                data.addSeries(s);
            }
        }
        JFreeChart chart = ChartFactory.createXYLineChart(title, "step", yLabel, data, PlotOrientation.VERTICAL,
                true, false, false);
        ((NumberAxis) chart.getXYPlot().getRangeAxis()).setAutoRangeIncludesZero(false);
        ChartUtils.saveChartAsPNG(file.toFile(), chart, WIDTH, HEIGHT);
        return file;
    }
}
