#!/usr/bin/env python3
"""Write `pandas_llm_annotate/data/reviews_zh.csv`: 60 long, synthetic Chinese
hotel-review-like texts (`review`, `label` 1 positive / 0 negative), for the chunking
notebook where `../shared/data` is absent. Written from sentence pools below, with a
fixed seed; a few reviews are posted twice (as on real sites) so dedupe shows too."""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "pandas_llm_annotate" / "data" / "reviews_zh.csv"

GOOD = [
    "酒店位置非常好，出门就是地铁站，去景点和商场都很方便。",
    "前台服务热情周到，入住和退房都很快，还帮我们免费升级了房型。",
    "房间宽敞明亮，床很舒服，枕头软硬合适，一夜睡得很香。",
    "卫生间干净整洁，热水充足，洗漱用品也比较齐全。",
    "早餐品种丰富，中西式都有，现做的面条和豆浆味道很好。",
    "隔音效果不错，虽然临街，晚上关上窗户基本听不到车声。",
    "房间里的网络速度很快，出差处理工作一点也不耽误。",
    "性价比很高，这个价格在市中心能住到这样的房间很满意。",
    "窗外就是江景，早上拉开窗帘看日出，心情特别好。",
    "停车场免费而且车位充足，自驾来的朋友可以放心。",
    "服务员每天打扫得很认真，毛巾和床单都换得很勤。",
    "行李寄存很方便，退房后还能在大堂休息等车。",
    "酒店周边吃的很多，步行五分钟就有一条美食街。",
    "房间装修是新的，没有异味，家具和电器都很新。",
    "客房服务响应很快，打电话要的东西十分钟就送到了。",
    "健身房和游泳池都开放，设施维护得很好。",
    "孩子很喜欢这里，酒店还准备了儿童拖鞋和小玩具。",
    "下次来这个城市出差还会选择这家酒店，推荐给大家。",
]
BAD = [
    "房间很小，放下两个行李箱就几乎没有地方走路了。",
    "隔音太差，隔壁说话和走廊的脚步声听得清清楚楚，一晚上没睡好。",
    "卫生间有一股下水道的味道，地漏还有头发，明显没有打扫干净。",
    "早餐品种很少，去晚一点就什么都没有了，也不见服务员补充。",
    "前台办理入住排了半个小时的队，态度也很冷淡。",
    "空调制冷效果很差，开到最低温度房间还是闷热。",
    "网络经常断线，打电话给前台说修也一直没有人来。",
    "价格偏贵，和周边同档次的酒店比起来完全不值这个价。",
    "床单上有污渍，要求更换等了一个多小时才有人来。",
    "窗户关不严，晚上风一直往里灌，外面施工的噪音也很大。",
    "停车要另外收费，而且车位很少，晚上回来根本找不到地方停。",
    "电梯很慢，高峰时段要等十几分钟，带着行李非常不方便。",
    "房间有一股烟味，明明订的是无烟房，换房也被拒绝了。",
    "热水时有时无，洗澡洗到一半突然变成冷水。",
    "酒店的照片和实际差别很大，设施陈旧，地毯也很脏。",
    "退房时被说少了一条毛巾要求赔偿，沟通很不愉快。",
    "周边比较偏僻，晚上打车很难，附近也没有什么吃饭的地方。",
    "以后不会再住这家了，也不推荐给朋友。",
]
NEUTRAL = [
    "我们是周末带家人过来旅游的，一共住了两个晚上。",
    "这次是因为公司出差，订的是商务大床房。",
    "酒店是通过网站预订的，到店时房间已经准备好了。",
    "大堂不算大，但装修风格还算简洁。",
    "从机场坐大巴过来大概四十分钟，再步行十分钟就到了。",
    "房间在十二楼，朝向是南边。",
]


def review(rng: random.Random, positive: bool) -> str:
    main, other = (GOOD, BAD) if positive else (BAD, GOOD)
    n = rng.randint(8, 40)
    sentences = rng.sample(NEUTRAL, 2)
    for _ in range(n):
        pool = (other if rng.random() < 0.15 else main)[:-1]  # the last one closes a review
        choice = rng.choice(pool)
        while choice == sentences[-1]:
            choice = rng.choice(pool)
        sentences.append(choice)
    sentences.append(main[-1])
    return "".join(sentences)


def main() -> None:
    rng = random.Random(20240611)
    rows = []
    for i in range(56):
        positive = i % 2 == 0
        rows.append((int(positive), review(rng, positive)))
    rows += [rows[3], rows[10], rows[17], rows[30]]  # posted twice
    rng.shuffle(rows)
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "review"])
        writer.writerows(rows)
    lengths = sorted(len(r) for _, r in rows)
    print(f"{OUT}: {len(rows)} reviews, {lengths[0]}–{lengths[-1]} characters, "
          f"{OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
