/* Colormaps: a sequential one for softmax maps (inferno-like: black → purple → orange →
 * pale yellow, so the largest value is the hottest, brightest colour) and a diverging one for
 * the difference (blue for negative, near-black at zero, orange-red for positive), each a
 * 256-entry table. Values map through a scale that is linear or logarithmic. */
#ifndef DIFFSCOPE_VIZ_COLORMAP_H
#define DIFFSCOPE_VIZ_COLORMAP_H
#include <stdint.h>

typedef enum { CMAP_SEQUENTIAL, CMAP_DIVERGING } cmap_kind;

/* How values become colours. Sequential: [0, vmax]; diverging: [-vmax, vmax], zero at the
 * centre. Log: sequential maps log10(v) over [log10(vmax) - decades, log10(vmax)]; diverging
 * uses sign(v)·log10(1 + |v|/floor) so small differences stay visible around zero. */
typedef struct {
    cmap_kind kind;
    float vmax;
    int log;
} cmap_scale;

#define CMAP_LOG_DECADES 4.0f

/* Position of V along the colour bar, 0..1 (NaN gives -1). */
float cmap_position(const cmap_scale *s, float v);
/* The value at position T (0..1) of the colour bar: the inverse of cmap_position. */
float cmap_value_at(const cmap_scale *s, float t);
/* ARGB8888 colour of position T (0..1) of map KIND. */
uint32_t cmap_color_at(cmap_kind kind, float t);
/* ARGB8888 colour of value V; NaN gets the masked colour. */
uint32_t cmap_color(const cmap_scale *s, float v);

/* Colour of cells that do not exist (keys after the query in a causal map). */
#define CMAP_MASKED 0xFF24262Eu

#endif
