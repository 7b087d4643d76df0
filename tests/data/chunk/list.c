#include <stdlib.h>

#define LIST_GROWTH 2

/* A growable array of ints. */
struct list {
    int *items;
    size_t len, cap;
};

static int grow(struct list *l) {
    size_t cap = l->cap ? l->cap * LIST_GROWTH : 8;
    int *items = realloc(l->items, cap * sizeof *items);
    if (!items)
        return -1;
    l->items = items;
    l->cap = cap;
    return 0;
}

int list_push(struct list *l, int value) {
    if (l->len == l->cap && grow(l) != 0)
        return -1;
    l->items[l->len++] = value;
    return 0;
}
