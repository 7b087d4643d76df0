package org.example.collections;

import java.util.ArrayList;
import java.util.List;

/** A last-in, first-out stack. */
public class Stack<T> {
    private final List<T> items = new ArrayList<>();
    private int pushes;

    public void push(T item) {
        items.add(item);
        pushes++;
    }

    /** Removes and returns the top item. */
    public T pop() {
        if (items.isEmpty()) {
            throw new IllegalStateException("empty stack");
        }
        return items.remove(items.size() - 1);
    }
}
