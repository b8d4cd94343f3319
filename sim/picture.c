/* The report's pictures (DESIGN §8): topology.dot and topology.svg (the
 * organization with the states of the end of the run, drawn by Graphviz
 * when `dot` is there, else laid out here as a grid) and convergence.svg
 * (each state change's convergence time over the run), both SVGs written
 * with no library. Every name in them went through xml() first: names come
 * from the directory. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "world.h"

#define DOT "/usr/bin/dot"

/* s with &, <, >, " escaped for XML (and DOT's quoted strings: " and \) */
static void xml(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\\': fputs("&#92;", f); break;
		default:
			if ((unsigned char)*s >= 0x20)
				fputc(*s, f);
		}
	}
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static bool write_dot(const char *path, json_t *table)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	fprintf(f, "digraph organization {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans\"];\n"
	           "  edge [fontname=\"sans\", fontsize=10];\n");
	json_t *g, *x;
	size_t i, k;
	json_array_foreach(json_object_get(table, "groups"), i, g)
	{
		fprintf(f, "  subgraph \"cluster_");
		xml(f, str(g, "name"));
		fprintf(f, "\" {\n    label=\"");
		xml(f, str(g, "name"));
		fprintf(f, " (master ");
		xml(f, str(g, "master"));
		fprintf(f, ")\";\n");
		json_array_foreach(json_object_get(g, "master_candidates"), k, x)
		{
			bool up = strcmp(str(x, "state"), "up") == 0;
			fprintf(f, "    \"master:");
			xml(f, str(x, "name"));
			fprintf(f, "\" [label=\"");
			xml(f, str(x, "name"));
			fprintf(f, "\", shape=ellipse, class=\"master\", color=\"%s\"];\n",
			        up ? "darkgreen" : "red");
		}
		json_array_foreach(json_object_get(g, "servers"), k, x)
		{
			bool up = strcmp(str(x, "state"), "up") == 0;
			fprintf(f, "    \"");
			xml(f, str(x, "name"));
			fprintf(f, "\" [class=\"server\", style=filled, fillcolor=\"%s\"];\n",
			        up ? "palegreen" : "salmon");
		}
		fprintf(f, "  }\n");
	}
	json_array_foreach(json_object_get(table, "groups"), i, g)
	{
		json_array_foreach(json_object_get(g, "connectors"), k, x)
		{
			bool up = strcmp(str(x, "state"), "up") == 0;
			json_t *lb = json_array_get(json_object_get(x, "local_bridgeheads"), 0);
			json_t *rb = json_array_get(json_object_get(x, "remote_bridgeheads"), 0);
			if (lb == NULL)
				continue;
			fprintf(f, "  \"");
			xml(f, str(lb, "server"));
			if (rb) {
				fprintf(f, "\" -> \"");
				xml(f, str(rb, "server"));
			} else {
				fprintf(f, "\" -> \"smarthost:");
				xml(f, str(x, "name"));
				fprintf(f, "\" [style=invis];\n  \"smarthost:");
				xml(f, str(x, "name"));
				fprintf(f, "\" [shape=cds, label=\"");
				xml(f, str(x, "smart_host"));
				fprintf(f, "\"];\n  \"");
				xml(f, str(lb, "server"));
				fprintf(f, "\" -> \"smarthost:");
				xml(f, str(x, "name"));
			}
			fprintf(f, "\" [label=\"");
			xml(f, str(x, "name"));
			fprintf(f, " (%lld)\", class=\"connector\", color=\"%s\"%s];\n",
			        (long long)json_integer_value(json_object_get(x, "cost")),
			        up ? "darkgreen" : "red", up ? "" : ", style=dashed");
		}
	}
	fprintf(f, "}\n");
	return fclose(f) == 0;
}

/* no Graphviz: every server in a row per group, coloured by state */
static bool write_grid_svg(const char *path, json_t *table)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	size_t ng = json_array_size(json_object_get(table, "groups")), most = 1;
	json_t *g, *x;
	size_t i, k;
	json_array_foreach(json_object_get(table, "groups"), i, g)
	{
		size_t n = json_array_size(json_object_get(g, "servers"));
		most = n > most ? n : most;
	}
	fprintf(
	    f,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"%zu\" height=\"%zu\">\n",
	    160 + most * 130, 40 + ng * 70);
	json_array_foreach(json_object_get(table, "groups"), i, g)
	{
		fprintf(f, "<text x=\"10\" y=\"%zu\" font-family=\"sans-serif\">", 55 + i * 70);
		xml(f, str(g, "name"));
		fprintf(f, "</text>\n");
		json_array_foreach(json_object_get(g, "servers"), k, x)
		{
			bool up = strcmp(str(x, "state"), "up") == 0;
			fprintf(f, "<g class=\"node server\"><title>");
			xml(f, str(x, "name"));
			fprintf(f,
			        "</title><rect x=\"%zu\" y=\"%zu\" width=\"120\" height=\"30\" "
			        "fill=\"%s\"/>"
			        "<text x=\"%zu\" y=\"%zu\" font-family=\"sans-serif\">",
			        150 + k * 130, 35 + i * 70, up ? "palegreen" : "salmon",
			        156 + k * 130, 55 + i * 70);
			xml(f, str(x, "name"));
			fprintf(f, "</text></g>\n");
		}
	}
	fprintf(f, "</svg>\n");
	return fclose(f) == 0;
}

static bool write_convergence_svg(const char *path, json_t *changes, int64_t run_ms)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	const int W = 800, H = 400, L = 70, B = 50, T = 30, R = 20;
	int64_t ymax = 100;
	json_t *c;
	size_t i;
	json_array_foreach(changes, i, c)
	{
		json_t *cv = json_object_get(c, "converged_ms");
		if (json_is_integer(cv) && json_integer_value(cv) > ymax)
			ymax = json_integer_value(cv);
	}
	ymax = ymax * 11 / 10;
	if (run_ms < 1000)
		run_ms = 1000;
	fprintf(
	    f,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	    "font-family=\"sans-serif\" font-size=\"12\">\n"
	    "<title>convergence after each state change</title>\n"
	    "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
	    "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time in the run (s), of %.1f s</text>\n"
	    "<text x=\"15\" y=\"%d\" transform=\"rotate(-90 15 %d)\" text-anchor=\"middle\">"
	    "convergence (ms)</text>\n"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%lld</text>\n"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">0</text>\n"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.1f</text>\n",
	    W, H, L, H - B, W - R, H - B, L, T, L, H - B, (L + W - R) / 2, H - 10,
	    (double)run_ms / 1000, (T + H - B) / 2, (T + H - B) / 2, L - 5, T + 5, (long long)ymax,
	    L - 5, H - B, L, H - B + 15, W - R, H - B + 15, (double)run_ms / 1000);
	json_array_foreach(changes, i, c)
	{
		int64_t at = json_integer_value(json_object_get(c, "at_ms"));
		json_t *cv = json_object_get(c, "converged_ms");
		double x = L + (double)(W - R - L) * (double)at / (double)run_ms;
		bool never = !json_is_integer(cv);
		double y = never ? T
		                 : (H - B) - (double)(H - B - T) * (double)json_integer_value(cv) /
		                                 (double)ymax;
		fprintf(
		    f,
		    "<circle class=\"change\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"><title>",
		    x, y, never ? "red" : "steelblue");
		xml(f, str(c, "what"));
		if (never)
			fprintf(f, ": not converged during the run");
		else
			fprintf(f, ": converged in %lld ms", (long long)json_integer_value(cv));
		fprintf(f, "</title></circle>\n");
		if (json_array_size(changes) > 12)
			continue; /* too many to label: each point's title says what it is */
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">", x + 7,
		        y + (i % 2 ? 12 : -6));
		xml(f, str(c, "what"));
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</svg>\n");
	return fclose(f) == 0;
}

void sim_pictures(struct sim_world *w, const char *dir, json_t *table, json_t *changes)
{
	char dot[1024], svg[1024], conv[1024];
	snprintf(dot, sizeof(dot), "%s/topology.dot", dir);
	snprintf(svg, sizeof(svg), "%s/topology.svg", dir);
	snprintf(conv, sizeof(conv), "%s/convergence.svg", dir);
	if (table && write_dot(dot, table)) {
		printf("report: %s\n", dot);
		bool drawn = false;
		if (access(DOT, X_OK) == 0) {
			char *argv[] = {DOT, "-Tsvg", "-o", svg, dot, NULL}, *out;
			drawn = sim_run_capture(argv, &out, 60000) == 0;
			free(out);
		}
		if (drawn || write_grid_svg(svg, table))
			printf("report: %s\n", svg);
	}
	if (write_convergence_svg(conv, changes, sim_now_ms() - w->t0))
		printf("report: %s\n", conv);
}
