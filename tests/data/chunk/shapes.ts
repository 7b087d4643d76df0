export interface Shape {
  area(): number;
  readonly name: string;
}

export type Point = { x: number; y: number };

export enum Unit {
  Px,
  Em,
}

export abstract class Base implements Shape {
  abstract readonly name: string;
  abstract area(): number;

  describe(): string {
    return `${this.name}: ${this.area()}`;
  }
}

export class Circle extends Base {
  readonly name = "circle";

  constructor(private radius: number) {
    super();
  }

  area(): number {
    return Math.PI * this.radius ** 2;
  }
}

export namespace Geometry {
  export function distance(a: Point, b: Point): number {
    return Math.hypot(a.x - b.x, a.y - b.y);
  }
}
