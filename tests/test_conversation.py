"""Follow-up questions are searched with the previous question's terms."""

from rag.conversation import Turn, is_followup, resolve


def test_followups_in_three_languages_carry_the_previous_question():
    kk = [Turn("Қазақстан халқы Ассамблеясы қашан құрылды?", "1995 жылы [1]")]
    assert resolve("Ал оның төрағасы кім болған?", kk).startswith("Қазақстан халқы Ассамблеясы")
    ru = [Turn("Когда была создана Ассамблея народа Казахстана?")]
    assert "Ассамблея" in resolve("А кто её возглавлял?", ru)
    en = [Turn("When was the Assembly of People of Kazakhstan founded?")]
    assert "Assembly" in resolve("And who chaired it?", en)


def test_a_standalone_question_is_left_alone():
    history = [Turn("Қордай оқиғасы қашан болды?")]
    q = "HAQ қозғалысы сайлауда тәуелсіз байқаушыларды неге қолдайды?"
    assert not is_followup(q)
    assert resolve(q, history) == q
    assert resolve("Ал оның төрағасы кім?", []) == "Ал оның төрағасы кім?"


def test_chained_followups_keep_the_topic():
    history = [Turn("Роза Ақылбекова кім?"), Turn("Ол қандай хатқа қол қойды?")]
    assert "Ақылбекова" in resolve("Ал ол хат кімге жіберілді?", history)
